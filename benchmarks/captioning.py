"""Captioning: our caption + per-token attention vs the caption alone from the usual transformers route.

Models: full-size BLIP-base, ViT-GPT2 and Florence-2 base twins (published configurations, random weights) in a
temporary models folder; ours loads through the registry (decoding with SDPA where the family allows it, eager
attention for the encoder pass that is rolled out and the teacher-forced pass that gives the maps), the baseline
loads the same folder with the library's defaults. BLIP's baseline is ``pipeline("image-to-text")``
(transformers 5 serves it as ``image-text-to-text`` with an empty prompt); the pipeline refuses
VisionEncoderDecoder models (no processor class), so ViT-GPT2's baseline is its model card's recipe
(image processor → ``generate`` → ``batch_decode``). Florence-2's is its model card's
(``processor(text="<CAPTION>", images=…)`` → ``generate`` → ``batch_decode``), greedy like ours, with the
checkpoint's n-gram ban and forced end switched off as ours does (its forced ``<s>`` counts as one new token).
Every caption has exactly ``tokens`` new tokens (min = max new tokens). The captions are random text and are
never shown.

Time to the first word: from calling ``caption`` with a word stream until the stream's first call, against the
image preprocessing, the encoder pass (ours, :meth:`HFCaptioner.encode`) and one decoding step (``generate`` of
one token from it), each measured alone in the same run, in turns with the first word.
"""

from __future__ import annotations

import statistics
import time
import warnings
from typing import Any

import torch
from PIL import Image

from benchmarks.common import Row, arguments, paired_medians, print_table, setup
from benchmarks.twins import twin_registry
from core.captioning.families import HFCaptioner
from core.captioning.types import DecodingConfig
from core.samples import load_sample

MODELS = ("blip-base", "vit-gpt2", "florence-2-base")


def baseline(model_id: str, folder: str, tokens: int, device: torch.device) -> Any:
    """A callable image → caption text, the way a transformers user would write it (caption only), on ``device``."""
    fixed = {"min_new_tokens": tokens, "max_new_tokens": tokens}
    if model_id == "blip-base":
        from transformers import logging, pipeline

        logging.set_verbosity_error()  # "image-to-text was renamed" is logged with a broken format string
        pipe = pipeline("image-to-text", model=folder, device=device)
        return lambda image: pipe(images=image, text="", generate_kwargs=fixed)[0]["generated_text"]
    if model_id == "florence-2-base":
        return florence_baseline(folder, tokens, device)
    from transformers import AutoImageProcessor, AutoTokenizer, VisionEncoderDecoderModel

    model = VisionEncoderDecoderModel.from_pretrained(folder).eval().to(device)
    processor, tokenizer = AutoImageProcessor.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)

    def caption(image: Image.Image) -> str:
        pixel_values = processor(images=[image], return_tensors="pt").pixel_values.to(device)
        with torch.inference_mode():
            output_ids = model.generate(pixel_values, **fixed)
        return tokenizer.batch_decode(output_ids, skip_special_tokens=True)[0].strip()

    return caption


def florence_baseline(folder: str, tokens: int, device: torch.device) -> Any:
    """Florence-2's model card: the processor builds image tokens and the ``<CAPTION>`` prompt, then ``generate``."""
    from transformers import AutoProcessor, Florence2ForConditionalGeneration

    model = Florence2ForConditionalGeneration.from_pretrained(folder).eval().to(device)
    processor = AutoProcessor.from_pretrained(folder)
    fixed = {"min_new_tokens": tokens + 1, "max_new_tokens": tokens + 1, "num_beams": 1, "do_sample": False}
    fixed |= {"no_repeat_ngram_size": 0, "forced_eos_token_id": None}

    def caption(image: Image.Image) -> str:
        inputs = processor(text="<CAPTION>", images=image, return_tensors="pt").to(device)
        with torch.inference_mode():
            output_ids = model.generate(**inputs, **fixed)
        return processor.batch_decode(output_ids, skip_special_tokens=True)[0].strip()

    return caption


def first_word(ours: HFCaptioner, image: Image.Image, config: DecodingConfig, repeats: int) -> Row:
    """Median time until the first streamed word, against preprocessing, the encoder pass and one decoding step.

    Both are timed in turns, each repeat right after a whole caption, so neither runs in a warmer loop than the
    other (the reference's parts used to be timed in tight loops of their own, the first word after a caption).
    """
    one = DecodingConfig(max_new_tokens=1)
    firsts: list[float] = []
    parts: list[tuple[float, float, float]] = []

    def until_first() -> float:
        start, seen = time.perf_counter(), list[float]()
        ours.caption(image, config, stream=lambda _words: seen.append(time.perf_counter() - start))
        return seen[0]

    def timed(fn: Any) -> tuple[float, Any]:
        start = time.perf_counter()
        out = fn()
        return time.perf_counter() - start, out

    for _ in range(repeats):
        firsts.append(until_first())
        prepare, pixels = timed(lambda: ours.pixels(image))
        encoder, encoded = timed(lambda pixels=pixels: ours.encode(pixels))
        with warnings.catch_warnings():  # the fixed 20-token minimum does not fit one token: transformers says so
            warnings.simplefilter("ignore", UserWarning)
            step, _ = timed(lambda pixels=pixels, encoded=encoded: ours.generate_ids(pixels, one, encoded=encoded))
        parts.append((prepare, encoder, step))
    prepare, encoder, step = (statistics.median(p) for p in zip(*parts, strict=True))
    check = f"preprocessing {prepare:.3f} s + encoder {encoder:.3f} s + one step {step:.3f} s"
    reference = statistics.median(sum(p) for p in parts)
    return Row(f"{ours.model_id} twin, first word", statistics.median(firsts), reference, "≤ 1.0", check=check)


def main(argv: list[str] | None = None) -> list[Row]:
    args = arguments(__doc__, argv)
    machine = setup()
    tokens = 3 if args.quick else 20
    image = load_sample("sample.jpg")
    rows: list[Row] = []
    firsts: list[Row] = []
    with twin_registry([] if args.quick else list(MODELS), small=args.quick) as registry:
        for model_id in MODELS:
            ours: HFCaptioner = registry.load(model_id, download=True)
            for decoder in (ours.model, getattr(ours.model, "text_decoder", None)):  # BLIP decodes with its own
                if decoder is not None:
                    decoder.generation_config.min_new_tokens = tokens  # fixed length; the config sets the maximum
            config = DecodingConfig(max_new_tokens=tokens)
            theirs = baseline(model_id, str(registry.models_dir / model_id), tokens, ours.model.device)
            result = ours.caption(image, config)
            assert len(result.token_ids) == tokens and result.word_maps.shape[0] == len(result.words)
            same = result.caption == theirs(image)
            times = paired_medians(
                lambda ours=ours, config=config: ours.caption(image, config),
                lambda theirs=theirs: theirs(image),
                args.repeats,
            )
            case = f"{model_id} twin, {tokens} tokens (ours with attention)"
            rows.append(Row(case, *times, "≤ 1.05", check=f"same caption: {same}"))
            firsts.append(first_word(ours, image, config, args.repeats))
            registry.evict(model_id)
    print_table("Caption + per-token attention vs caption only", machine, rows, "transformers")
    print_table("Time to the first word vs encoder + one decoding step", machine, firsts, "encoder + one step")
    return rows + firsts


if __name__ == "__main__":
    main()
