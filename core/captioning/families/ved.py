"""VisionEncoderDecoder (``model_type="vision-encoder-decoder"``), e.g. ViT-GPT2: any vision encoder, any
text decoder with cross-attention; image processor and tokenizer are saved separately.

With a GPT-2 decoder the maps pass is a replay: decoding keeps each layer's cross-attention input (a hook, the
SDPA kernel untouched), and the maps are each layer's cross-attention run again alone, with eager attention, on
those queries and the keys decoding cached. Every decoder layer's attention reads only its own query, so these
are the teacher-forced pass's maps (to float rounding) without its cost: re-running GPT-2's 12 layers over the
caption reads ~400 MB of their weights, the replay (each layer's query and output projections) ~57 MB.
"""

from __future__ import annotations

from typing import Any

import torch

from .base import Encoded, HFCaptioner, Pass, encoder_rollout, this_thread


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
        """GPT-2's cross-attention modules in layer order, whose maps can be replayed; none for other decoders."""
        decoder = self.model.decoder
        return [block.crossattention for block in decoder.transformer.h] if decoder.config.model_type == "gpt2" else []

    def generate(self, pixels: torch.Tensor, encoded: Encoded | None, kwargs: dict[str, Any]) -> torch.Tensor:
        if encoded is None:
            return self.model.generate(pixels, **kwargs)
        modules = self.cross_attentions() if kwargs.get("output_logits") else []  # a beam's pass runs whole
        rows: list[list[torch.Tensor]] = [[] for _ in modules]

        def keep(layer: int, args: tuple[torch.Tensor, ...]) -> None:
            rows[layer].append(args[0])

        with this_thread(modules, keep, inputs=True):
            out = self.model.generate(encoder_outputs=encoded.outputs, **kwargs)
        encoded.queries = tuple(torch.cat(layer, dim=1) for layer in rows)
        return out

    def forward(self, pixels: torch.Tensor, ids: list[int], encoded: Encoded | None = None) -> Pass:
        span = self.span(len(ids))
        if encoded is not None and (replayed := self.replay(encoded, ids, span)) is not None:
            return replayed
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
        return Pass(out.logits[0, span], out.cross_attentions, (0, slice(None), span), mixed)

    def replay(self, encoded: Encoded, ids: list[int], span: slice) -> Pass | None:
        """The maps pass from decoding's own cross-attention queries, or ``None`` where decoding kept none for
        ``ids`` (a beam, another caption, a decoder that isn't GPT-2): then the whole pass runs."""
        logits = encoded.logits_for(ids)
        if logits is None or encoded.cross is None or not encoded.queries or encoded.queries[0].shape[1] < span.stop:
            return None
        from transformers import DynamicCache, EncoderDecoderCache

        cache = EncoderDecoderCache(DynamicCache(), encoded.cross)  # every layer's keys marked as computed
        states = encoded.outputs.last_hidden_state
        attentions = tuple(
            module(queries[:, : span.stop], cache=cache, encoder_hidden_states=states)[1]
            for module, queries in zip(self.cross_attentions(), encoded.queries, strict=True)
        )
        return Pass(logits, attentions, (0, slice(None), span), encoded.rollout)
