"""Florence-2 (``model_type="florence2"``): a DaViT image encoder and a BART encoder-decoder, prompted by task.

The BART encoder reads ``[pooled image token, 24×24 image tokens, <s> prompt </s>]`` and the decoder
cross-attends to all of it, so a word's map is its cross-attention over the image positions only: the
pooled token (one extra position, dropped like ViT's CLS) and the grid, with the prompt's columns left out
and the rest renormalised by :func:`~core.captioning.attention.to_grid`. Captions use the ``<CAPTION>``
task. DaViT's window and channel attention never relate one patch to another across the image, so the
rollout runs through the BART encoder's self-attention over the whole input instead.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Self

import numpy as np
import torch

from core.models.device import host
from core.models.registry import ModelError

from .base import Encoded, HFCaptioner, Pass, encoder_rollout
from .kernels import eager_attention

#: Florence-2's input side: its model config has none; every published checkpoint's processor resizes to 768 px.
IMAGE_SIZE = 768
#: The ``<CAPTION>`` task's prompt, as ``Florence2Processor`` writes it (tests compare with the processor).
PROMPT = "What does the image describe?"
#: Generation defaults the checkpoints carry that our decoding controls do not name: switched off, so they
#: never change a caption behind the controls (an n-gram ban, a forced end at the length limit).
NEUTRAL = {"no_repeat_ngram_size": 0, "forced_bos_token_id": None, "forced_eos_token_id": None}


class Florence2Captioner(HFCaptioner):
    model_type = "florence2"
    family = "florence-2"
    label = "Florence-2"
    model_class = "Florence2ForConditionalGeneration"
    states_key = "key_value_states"  # BART's cross-attention

    def __init__(self, model_id: str, model: Any, image_processor: Any, tokenizer: Any) -> None:
        super().__init__(model_id, model, image_processor, tokenizer)
        size: dict[str, int] = image_processor.size
        side = (size.get("height"), size.get("width"))
        n_image = int(image_processor.image_seq_length)
        if side != (IMAGE_SIZE, IMAGE_SIZE) or n_image != 1 + math.prod(self.grid):
            raise ModelError(
                f"This Florence-2 processor resizes to {side[0]}×{side[1]} px with {n_image} image tokens; "
                f"Vision Lab reads Florence-2 at {IMAGE_SIZE} px with {1 + math.prod(self.grid)}."
            )
        self.n_image = n_image
        image = [int(tokenizer.image_token_id)] * n_image
        prompt = tokenizer.bos_token + PROMPT + tokenizer.eos_token  # as Florence2Processor writes "<CAPTION>"
        text: list[int] = tokenizer(prompt, add_special_tokens=False).input_ids
        self.prompt_ids = torch.tensor([image + text])

    @classmethod
    def from_pretrained(cls, model_id: str, source: str, dtype: str = "float32") -> Self:
        """Refuses Microsoft's original remote-code layout (``microsoft/Florence-2-*``): its config reads as a
        native one, but the native class would find none of its weights and caption with random ones."""
        vision: dict[str, Any] = json.loads((Path(source) / "config.json").read_text()).get("vision_config", {})
        if vision.get("model_type") == "davit":
            raise ModelError(
                f"{model_id} is Microsoft's original Florence-2 layout, which needs remote code; "
                "use a native conversion such as florence-community/Florence-2-base."
            )
        return super().from_pretrained(model_id, source, dtype)

    @staticmethod
    def vision_config(config: Any) -> Any:
        """Input side and the encoder's total stride (4·2·2·2 = 32 in every published Florence-2)."""
        return SimpleNamespace(image_size=IMAGE_SIZE, patch_size=math.prod(config.vision_config.patch_stride))

    def special_ids(self) -> tuple[list[int], list[int | None]]:
        """BART's decoder starts from ``</s>`` and its first token is always ``<s>``: both are the prefix."""
        text = self.model.config.text_config
        return [text.decoder_start_token_id, text.bos_token_id], [text.eos_token_id, text.pad_token_id]

    def vision_encoder(self) -> torch.nn.Module:
        return self.model.model.vision_tower

    def encode(self, pixels: torch.Tensor) -> Encoded:
        """The image-and-prompt encoder's output and the rollout of its self-attention, shared by decoding
        and the teacher-forced pass. DaViT runs the SDPA kernel (its window and channel attention are never
        drawn); only the BART encoder, whose attention is rolled out, runs eager attention.

        The steps are ``Florence2Model.forward``'s own: image features into the prompt's image tokens, then
        the BART encoder over the whole input.
        """
        from transformers.modeling_outputs import BaseModelOutput

        model = self.model.model
        with torch.inference_mode():
            features: torch.Tensor = model.get_image_features(pixels).pooler_output
            embeds: torch.Tensor = model.get_input_embeddings()(self.prompt_ids)
            image = (self.prompt_ids == model.config.image_token_id).unsqueeze(-1)
            embeds = embeds.masked_scatter(image, features.to(embeds.dtype))
            with eager_attention():
                out = model.language_model.encoder(inputs_embeds=embeds, output_attentions=True)
        start = time.perf_counter()
        mixed = encoder_rollout(out.attentions)
        seconds = time.perf_counter() - start
        return Encoded(BaseModelOutput(last_hidden_state=out.last_hidden_state), mixed, seconds)

    def generate(self, pixels: torch.Tensor, encoded: Encoded | None, kwargs: dict[str, Any]) -> torch.Tensor:
        source = {"input_ids": self.prompt_ids, "pixel_values": pixels} if encoded is None else {}
        if encoded is not None:
            source["encoder_outputs"] = encoded.outputs
        return self.model.generate(
            **source, decoder_input_ids=torch.tensor([self.prefix], device=self.prompt_ids.device), **kwargs | NEUTRAL
        )

    def forward(self, pixels: torch.Tensor, ids: list[int], encoded: Encoded | None = None) -> Pass:
        span = self.span(len(ids))
        if encoded is None:
            source: dict[str, Any] = {"input_ids": self.prompt_ids, "pixel_values": pixels}
        else:
            source = {"encoder_outputs": encoded.outputs, **encoded.reuse(ids)}
        out = self.model(
            **source,
            decoder_input_ids=torch.tensor([self.prefix + ids], device=self.prompt_ids.device),
            output_attentions=True,
        )
        mixed = encoder_rollout(out.encoder_attentions) if encoded is None else encoded.rollout
        return Pass(out.logits[0, span], out.cross_attentions, self.cross_index(span), mixed)

    def cross_attentions(self) -> list[torch.nn.Module]:
        return [layer.encoder_attn for layer in self.model.model.language_model.decoder.layers]

    def cross_index(self, span: slice) -> tuple[Any, ...]:
        return (0, slice(None), span, slice(0, self.n_image))  # the prompt's text tokens follow the image's

    def token_rollout(self, run: Pass, n_tokens: int) -> np.ndarray:
        """Token → encoder-input rollout over the whole encoder input, kept to the image positions."""
        span = self.span(n_tokens)
        to_inputs = np.mean([host(a[0, :, span]).mean(axis=0) for a in run.attentions], axis=0)
        return run.vision_rollout.apply(to_inputs)[:, : self.n_image]


__all__ = ["IMAGE_SIZE", "PROMPT", "Florence2Captioner"]
