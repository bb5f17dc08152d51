"""Random-weight twins of the default models, saved into a models folder and loaded through the registry.

No hub is reachable where the benchmarks run, and speed and memory depend on architecture, not on
weight values: a twin built from the published configuration costs what the real checkpoint costs.
Their outputs are random: the benchmarks never show them as captions or predictions.
``small=True`` builds the tiny test captioners instead (smoke tests only).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors.torch import save_file

from core.models import Registry
from tests.captioning.florence2_twin import save_florence2_base
from tests.captioning.tiny_models import bert_tokenizer, build_tiny_models, gpt2_tokenizer


def save_blip_base(dest: Path) -> None:
    """``BlipConfig()`` defaults are blip-base; BERT WordPiece plus BLIP's [DEC] and [ENC] tokens."""
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    tok = bert_tokenizer()
    tok.add_special_tokens({"bos_token": "[DEC]", "additional_special_tokens": ["[ENC]"]})
    config = BlipConfig()
    assert config.text_config.vocab_size == len(tok) and config.text_config.bos_token_id == tok.bos_token_id
    BlipForConditionalGeneration(config).save_pretrained(dest)
    BlipProcessor(image_processor=BlipImageProcessor(), tokenizer=tok).save_pretrained(dest)


def save_vit_gpt2(dest: Path) -> None:
    """ViT-B/16 (224 px) encoder and GPT-2 small with cross-attention, as nlpconnect/vit-gpt2."""
    from transformers import (
        GPT2Config,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
        ViTConfig,
        ViTImageProcessor,
    )

    tok = gpt2_tokenizer()
    decoder = GPT2Config(add_cross_attention=True, is_decoder=True)
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(ViTConfig(), decoder)
    config.decoder_start_token_id = config.pad_token_id = config.eos_token_id = tok.eos_token_id
    VisionEncoderDecoderModel(config=config).save_pretrained(dest)
    tok.save_pretrained(dest)
    ViTImageProcessor().save_pretrained(dest)


def save_torchvision(dest: Path, arch: str) -> None:
    """A randomly initialised torchvision classifier as ``<dest>/model.safetensors``."""
    from torchvision.models import get_model

    dest.mkdir(parents=True, exist_ok=True)
    net = get_model(arch, weights=None)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(dest / "model.safetensors"))


def save_vgg19_features(dest: Path) -> None:
    """VGG19's conv stack only, as the registry's own features-only cache holds it (80 MB, not 548 MB)."""
    from torchvision.models import vgg19

    dest.mkdir(parents=True, exist_ok=True)
    features = vgg19(weights=None).features
    save_file({k: v.contiguous() for k, v in features.state_dict().items()}, str(dest / "model.safetensors"))


BUILDERS = {
    "blip-base": save_blip_base,
    "vit-gpt2": save_vit_gpt2,
    "florence-2-base": save_florence2_base,
    "vgg19": save_vgg19_features,
    "resnet50": lambda dest: save_torchvision(dest, "resnet50"),
}


def build_twins(folder: Path, model_ids: list[str], *, small: bool = False) -> Path:
    """Write twins of ``model_ids`` into ``folder/<id>/``; with ``small``, the captioners are the tiny test models."""
    torch.manual_seed(0)
    if small:
        build_tiny_models(folder)
    for model_id in model_ids:
        if not (folder / model_id).is_dir():
            BUILDERS[model_id](folder / model_id)
    return folder


def build_twins_apart(folder: Path, model_ids: list[str]) -> Path:
    """:func:`build_twins` in a child process: building holds ~2 GB that the caller (a test, a benchmark
    beside a server under measurement) would otherwise keep in its heap."""
    cmd = [sys.executable, "-m", "benchmarks.twins", str(folder), *model_ids]
    subprocess.run(cmd, check=True, cwd=Path(__file__).resolve().parents[1])
    return folder


@contextmanager
def twin_registry(model_ids: list[str], *, small: bool = False) -> Iterator[Registry]:
    """An offline registry whose models folder (a temporary directory) holds twins of ``model_ids``."""
    with tempfile.TemporaryDirectory(prefix="visionlab-twins-") as tmp:
        yield Registry(models_dir=build_twins(Path(tmp), model_ids, small=small), online=False)


def main(argv: list[str] | None = None) -> None:
    """``python -m benchmarks.twins DEST ID…``: write twins of the given models into DEST."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("dest", type=Path)
    parser.add_argument("ids", nargs="+", choices=sorted(BUILDERS))
    args = parser.parse_args(argv)
    build_twins(args.dest, args.ids)


if __name__ == "__main__":
    main()
