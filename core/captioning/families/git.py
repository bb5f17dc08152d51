"""GIT (``model_type="git"``): image tokens and text tokens in one self-attention stack, so there is no
cross-attention to read and no separate encoder pass to share; a word's map is the text query's attention
over the image prefix, and its rollout runs through the whole stack."""

from __future__ import annotations

import numpy as np
import torch

from ..attention import Rollout
from .base import Encoded, HFCaptioner, Pass, encoder_rollout, head_mean


class GitCaptioner(HFCaptioner):
    model_type = "git"
    family = "git"
    label = "GIT"
    model_class = "GitForCausalLM"
    fast_kernel = False  # GIT's text self-attention has an eager class only (GIT_SELF_ATTENTION_CLASSES)

    def special_ids(self) -> tuple[list[int], list[int | None]]:
        return [self.tokenizer.cls_token_id], [self.tokenizer.sep_token_id, self.tokenizer.pad_token_id]

    def forward(self, pixels: torch.Tensor, ids: list[int], encoded: Encoded | None = None) -> Pass:
        tokens = torch.tensor([self.prefix + ids], device=pixels.device)
        span = self.span(len(ids))
        vision = self.model.git.image_encoder(pixel_values=pixels, output_attentions=True)
        out = self.model(input_ids=tokens, pixel_values=pixels, output_attentions=True)
        n_image: int = out.attentions[0].shape[-1] - tokens.shape[-1]  # image tokens prefix the sequence
        text = slice(n_image + span.start, n_image + span.stop)
        index = (0, slice(None), text, slice(0, n_image))
        return Pass(out.logits[0, text], out.attentions, index, encoder_rollout(vision.attentions))

    def token_rollout(self, run: Pass, n_tokens: int) -> np.ndarray:
        """Token → encoder-input-patch rollout through GIT's own self-attention (image and text together)."""
        n = run.image_positions
        stack = Rollout.of([head_mean(a[0]) for a in run.attentions])
        first = n + len(self.prefix) - 1
        queries = np.eye(stack.positions, dtype=np.float32)[first : first + n_tokens]  # only the caption's rows
        return run.vision_rollout.apply(stack.apply(queries)[:, :n])
