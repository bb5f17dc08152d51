"""Dataset mode: the pages' core adapters run over whole image sets as jobs (locally or on Ray Data)."""
