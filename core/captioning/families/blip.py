"""BLIP (``model_type="blip"``): a ViT encoder and a BERT decoder that cross-attends to it."""

from __future__ import annotations

from typing import Any

import torch

from .base import Encoded, HFCaptioner, Pass, encoder_rollout


class BlipCaptioner(HFCaptioner):
    model_type = "blip"
    family = "blip"
    label = "BLIP"
    model_class = "BlipForConditionalGeneration"
    fast_kernel = False  # BLIP's own attention classes are eager only (no AttentionInterface): so is its pipeline

    def special_ids(self) -> tuple[list[int], list[int | None]]:
        text = self.model.config.text_config
        return [text.bos_token_id], [text.sep_token_id, text.pad_token_id]

    def vision_encoder(self) -> torch.nn.Module:
        return self.model.vision_model

    def cross_attentions(self) -> list[torch.nn.Module]:
        return [layer.crossattention for layer in self.model.text_decoder.bert.encoder.layer]

    def generate(self, pixels: torch.Tensor, encoded: Encoded | None, kwargs: dict[str, Any]) -> torch.Tensor:
        if encoded is None:
            return self.model.generate(pixel_values=pixels, **kwargs)
        # what BlipForConditionalGeneration.generate does after its encoder
        states: torch.Tensor = encoded.outputs.last_hidden_state
        text = self.model.config.text_config
        return self.model.text_decoder.generate(
            input_ids=torch.tensor([self.prefix], device=states.device),
            eos_token_id=text.sep_token_id,
            pad_token_id=text.pad_token_id,
            encoder_hidden_states=states,
            encoder_attention_mask=torch.ones(states.shape[:-1], dtype=torch.long, device=states.device),
            **kwargs,
        )

    def forward(self, pixels: torch.Tensor, ids: list[int], encoded: Encoded | None = None) -> Pass:
        span = self.span(len(ids))
        reuse: dict[str, Any] = {}
        if encoded is None:
            vision = self.model.vision_model(pixel_values=pixels, output_attentions=True)
            states, mixed = vision.last_hidden_state, encoder_rollout(vision.attentions)
        else:
            states, mixed, reuse = encoded.outputs.last_hidden_state, encoded.rollout, encoded.reuse(ids)
        tokens = torch.tensor([self.prefix + ids], device=states.device)
        out = self.model.text_decoder(input_ids=tokens, encoder_hidden_states=states, output_attentions=True, **reuse)
        return Pass(out.logits[0, span], out.cross_attentions, self.cross_index(span), mixed)
