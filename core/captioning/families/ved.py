"""VisionEncoderDecoder (``model_type="vision-encoder-decoder"``), e.g. ViT-GPT2: any vision encoder, any
text decoder with cross-attention; image processor and tokenizer are saved separately."""

from __future__ import annotations

from typing import Any

import torch

from .base import Encoded, HFCaptioner, Pass, encoder_rollout


class VisionEncoderDecoderCaptioner(HFCaptioner):
    model_type = "vision-encoder-decoder"
    family = "vit-gpt2"
    label = "VisionEncoderDecoder (e.g. ViT-GPT2)"
    model_class = "VisionEncoderDecoderModel"
    joint_processor = False

    @staticmethod
    def vision_config(config: Any) -> Any:
        return config.encoder

    def special_ids(self) -> tuple[list[int], list[int | None]]:
        config = self.model.config
        return [config.decoder_start_token_id], [config.eos_token_id, config.pad_token_id]

    def vision_encoder(self) -> torch.nn.Module:
        return self.model.encoder

    def cross_attentions(self) -> list[torch.nn.Module]:
        decoder = self.model.decoder  # GPT-2's blocks; any other decoder runs the whole pass
        return [block.crossattention for block in decoder.transformer.h] if decoder.config.model_type == "gpt2" else []

    def generate(self, pixels: torch.Tensor, encoded: Encoded | None, kwargs: dict[str, Any]) -> torch.Tensor:
        if encoded is None:
            return self.model.generate(pixels, **kwargs)
        return self.model.generate(encoder_outputs=encoded.outputs, **kwargs)

    def forward(self, pixels: torch.Tensor, ids: list[int], encoded: Encoded | None = None) -> Pass:
        span = self.span(len(ids))
        if encoded is None:
            source: dict[str, Any] = {"pixel_values": pixels}
        else:  # the model hands its decoder the arguments named "decoder_…"
            source = {"encoder_outputs": encoded.outputs, **encoded.reuse(ids, "decoder_logits_to_keep")}
        out = self.model(
            **source,
            decoder_input_ids=torch.tensor([self.prefix + ids], device=self.model.device),
            output_attentions=True,
        )
        mixed = encoder_rollout(out.encoder_attentions) if encoded is None else encoded.rollout
        return Pass(out.logits[0, span], out.cross_attentions, self.cross_index(span), mixed)
