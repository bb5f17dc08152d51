"""Show, Attend and Tell, our own captioner: ``model`` (networks, decoding, checkpoints, the registry loader),
``data`` (datasets and the feature cache), ``train``, ``evaluate`` and the command line in ``__main__``
(``python -m core.captioning.sat train|evaluate --help``). Imports run one way: model ← data ← train,
evaluate ← __main__.
"""
