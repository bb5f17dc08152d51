"""Captioners behind one result type: HF transformers adapters and our Show-Attend-Tell model."""

from .types import Captioner, CaptionResult, DecodingConfig

__all__ = ["CaptionResult", "Captioner", "DecodingConfig"]
