"""The shared shape of every transformers captioner; one small subclass per family says what differs.

Attention is never read from ``generate``: BLIP's returns no cross-attention, and per-step shapes
under the KV cache and beam search are easy to misread. Instead every caption is re-run through
one teacher-forced forward pass with ``output_attentions=True``, so the map drawn for a word is the
attention of the query that predicted it, for greedy, beam and sampled captions alike. Only that pass
(and the encoder pass whose attention is rolled out) needs eager attention, which returns the weights;
decoding runs the SDPA kernel where the family's attention allows it (:mod:`.kernels`). The word probabilities
of greedy and sampled captions are decoding's own raw logits, so that pass computes no vocabulary-sized rows.
For them the pass is even a replay (:meth:`HFCaptioner.replay`): decoding keeps each layer's cross-attention input
(a hook; the kernel untouched), and only the cross-attention runs again, on those queries and the keys it cached.
A row of a layer's attention depends only on its own query, so these are the teacher-forced maps to float
rounding, without re-running the decoder's layers over the caption (GPT-2's read ~400 MB of weights; the
cross-attention's query and output projections ~57 MB).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, ClassVar, Self, cast

import numpy as np
import torch
from PIL import Image, ImageOps

from core.models.device import host
from core.runtime import SILENT, Reporter, global_rng

from ..attention import AttentionStack, MergeStyle, Rollout, merge_subwords, word_maps
from ..types import WHOLE, Box, CaptionResult, DecodingConfig, WordStream
from .kernels import eager_attention, register

TOP_K = 5


def generate_kwargs(config: DecodingConfig) -> dict[str, Any]:
    """``DecodingConfig`` → keyword arguments of ``generate`` (explicit, so checkpoint defaults never leak in)."""
    kwargs: dict[str, Any] = {
        "max_new_tokens": config.max_new_tokens,
        "repetition_penalty": config.repetition_penalty,
        "num_beams": 1,
        "do_sample": False,
    }
    if config.strategy == "beam":
        kwargs |= {"num_beams": config.num_beams, "early_stopping": True}
    elif config.strategy == "sample":
        kwargs |= {"do_sample": True, "top_p": config.top_p, "temperature": config.temperature, "top_k": 0}
    return kwargs


def _stopping(reporter: Reporter, max_new_tokens: int, prompt_len: int) -> Any:
    """A stopping criterion that reports progress per token and raises ``Cancelled`` on request."""
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _Report(StoppingCriteria):
        def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **_: Any) -> torch.BoolTensor:  # pyright: ignore[reportIncompatibleMethodOverride] (transformers' own signature lists its kwargs)
            done = input_ids.shape[-1] - prompt_len
            reporter.step(min(done / max(max_new_tokens, 1), 1.0), f"token {done}")
            return cast(torch.BoolTensor, torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device))

    return StoppingCriteriaList([_Report()])


def _word_streamer(captioner: HFCaptioner, stream: WordStream) -> Any:
    """A ``generate`` streamer that hands ``stream`` the caption's words so far after every token.

    ``generate`` puts the prompt first, then one token per step; the words are :meth:`HFCaptioner.words`
    of the tokens so far, so the last call's words are the result's (the last word may still grow by sub-words).
    """
    from transformers.generation.streamers import BaseStreamer

    class _Words(BaseStreamer):
        def __init__(self) -> None:
            self.ids: list[int] | None = None  # None until the prompt has been put
            self.ended = False

        def put(self, value: torch.Tensor) -> None:
            if self.ids is None:
                self.ids = []
                return
            token = int(value.reshape(-1)[-1])
            self.ended = self.ended or token in captioner.stop_ids
            if not self.ended:
                self.ids.append(token)
                stream(tuple(captioner.words(self.ids)))

        def end(self) -> None:
            pass

    return _Words()


@contextmanager
def this_thread(
    modules: Sequence[torch.nn.Module], keep: Callable[..., None], *, inputs: bool = False
) -> Generator[None]:
    """Inside the block, ``keep(i, args, output)`` sees each call of ``modules[i]`` made by this thread (with
    ``inputs``, ``keep(i, args)`` before it runs). Models are shared by every session's thread: another thread's
    calls would mix its layers into this one's, so they are skipped, and the hooks go when the block ends."""
    owner = threading.get_ident()

    def hook(i: int, *call: Any) -> None:
        if threading.get_ident() == owner:
            keep(i, *call[1:])

    handles = [
        m.register_forward_pre_hook(partial(hook, i)) if inputs else m.register_forward_hook(partial(hook, i))
        for i, m in enumerate(modules)
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def head_mean(attention: torch.Tensor) -> np.ndarray:
    """(heads, n, n) → (1, n, n) float32 on the CPU: the rollout reads only the head mean, and torch's
    multi-threaded mean in float32 costs a quarter of numpy's on the host copy (bf16 accumulates in float32)."""
    return host(attention.mean(dim=0, keepdim=True, dtype=torch.float32))


def encoder_rollout(attentions: Sequence[torch.Tensor]) -> Rollout:
    """Rollout through the vision encoder's self-attention (batch of one), over its positions."""
    return Rollout.of([head_mean(a[0]) for a in attentions])


@dataclass
class Encoded:
    """The vision encoder's output for decoding, its attention already reduced to the rollout.

    BLIP's full encoder attention at 384 px is 190 MB (12 layers × 12 heads × 577²) and only its rollout is
    ever read: :meth:`HFCaptioner.encode` keeps per-layer head means, so the stack is never held at once.
    """

    outputs: Any  # a ``BaseModelOutput`` holding ``last_hidden_state`` only
    rollout: Rollout
    rollout_seconds: float  # time spent on the rollout, counted as explaining rather than captioning
    #: The decoder's cross-attention keys and values of these states, as decoding computed them (a
    #: ``DynamicCache``, batch of one): the teacher-forced pass reuses them (BLIP-base: ~16 GFLOP saved).
    cross: Any = None
    #: The raw logits decoding computed for each new token (greedy and sampled captions; a beam's are not kept),
    #: and the tokens they decoded: the teacher-forced pass then runs its LM head on no row (Florence-2: ~40 % of
    #: its FLOPs), and the probabilities shown are the ones decoding drew from.
    logits: torch.Tensor | None = None
    decoded: tuple[int, ...] = ()
    #: Per decoder layer, the inputs decoding handed its cross-attention, one row per position of the prompt and
    #: the decoded tokens, ``(1, rows, width)`` (greedy and sampled captions): :meth:`HFCaptioner.replay` reads them.
    queries: tuple[torch.Tensor, ...] = ()

    def logits_for(self, ids: Sequence[int]) -> torch.Tensor | None:
        """Decoding's logits of the caption ``ids`` (``None`` unless decoding kept them for exactly these tokens)."""
        if self.logits is None or tuple(ids) != self.decoded[: len(ids)]:
            return None
        return self.logits[: len(ids)]

    def reuse(self, ids: Sequence[int], logits_key: str = "logits_to_keep") -> dict[str, Any]:
        """Keyword arguments that hand a decoder forward the cross-attention cache (its self-attention fresh) and,
        when decoding's logits cover ``ids``, ask it for logits at no position (``logits_key`` names the argument:
        an empty index leaves the LM head nothing to compute, where ``1`` would still read its whole weight)."""
        device = self.outputs.last_hidden_state.device
        kept = {} if self.logits_for(ids) is None else {logits_key: torch.empty(0, dtype=torch.long, device=device)}
        if self.cross is None:
            return kept
        return {"cache": self.cross_cache(), "use_cache": True, **kept}

    def cross_cache(self) -> Any:
        """A fresh decoder cache holding :attr:`cross` (every layer's keys marked as computed, so no layer projects
        the encoder states again) and an empty self-attention part."""
        from transformers import DynamicCache, EncoderDecoderCache

        return EncoderDecoderCache(DynamicCache(), self.cross)

    def keep_cross(self, cache: Any) -> None:
        """Keep the cross-attention part of ``generate``'s cache (one row: beams share the encoder states)."""
        from transformers import DynamicCache, EncoderDecoderCache

        if isinstance(cache, EncoderDecoderCache):
            cross: Any = DynamicCache()
            for i, layer in enumerate(cache.cross_attention_cache.layers):
                keys, values = cast(Any, layer).keys, cast(Any, layer).values
                cross.update(keys[:1], values[:1], i)
            self.cross = cross


@dataclass
class Pass:
    """One teacher-forced pass: logits predicting each caption token and the attention tensors."""

    logits: torch.Tensor  # (tokens, vocab)
    attentions: tuple[torch.Tensor, ...]  # per layer, as the model returned them (autograd leaves of interest)
    index: tuple[Any, ...]  # selects (heads, tokens, image positions) from each of ``attentions``
    vision_rollout: Rollout  # rollout of the vision self-attention

    @property
    def image_positions(self) -> int:
        """Number of positions the vision encoder outputs (patches plus CLS/extra tokens)."""
        return self.vision_rollout.positions

    @property
    def rows(self) -> list[torch.Tensor]:
        """Per layer (heads, tokens, positions): each caption token's query over the image positions."""
        return [a[self.index] for a in self.attentions]


class HFCaptioner:
    """A loaded hub captioner behind the :class:`~core.captioning.types.Captioner` contract.

    A family says how it loads (:meth:`from_pretrained`), where its vision settings live, which tokens open
    and end a caption, how it decodes from a shared encoder pass and how it runs the teacher-forced pass.
    """

    model_type: ClassVar[str]  # ``config.model_type`` of the checkpoints this family reads
    family: ClassVar[str]  # short name shown in model lists
    label: ClassVar[str]  # how the family is named in messages
    model_class: ClassVar[str]  # the transformers class, by name: imported only when a model loads
    joint_processor: ClassVar[bool] = True  # one ``AutoProcessor`` holds the image processor and the tokenizer
    #: Whether every attention of the family goes through transformers' ``AttentionInterface``, so decoding can
    #: run SDPA and the maps pass eager attention (:mod:`.kernels`); otherwise the model loads with eager only.
    fast_kernel: ClassVar[bool] = True
    #: The keyword under which the family's cross-attention modules take the encoder states (:meth:`replay`).
    states_key: ClassVar[str] = "encoder_hidden_states"

    def __init__(self, model_id: str, model: Any, image_processor: Any, tokenizer: Any) -> None:
        self.model_id = model_id
        self.model: Any = model.eval().requires_grad_(False)
        self.image_processor: Any = image_processor
        self.tokenizer: Any = tokenizer
        vision = self.vision_config(model.config)
        side = int(vision.image_size) // int(vision.patch_size)
        self.grid: tuple[int, int] = (side, side)
        self.merge_style: MergeStyle = "wordpiece" if type(tokenizer).__name__.startswith("Bert") else "gpt2"
        prefix, stops = self.special_ids()
        self.prefix: list[int] = prefix
        self.stop_ids: set[int] = {i for i in stops if i is not None}
        self.end_id: int | None = next((i for i in stops if i is not None), None)  # how ``generate`` ends one

    # -- what a family says -------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, model_id: str, source: str, dtype: str = "float32") -> Self:
        """Model, image processor and tokenizer from a ``save_pretrained`` folder, with switchable attention."""
        import transformers

        attention = register() if cls.fast_kernel else "eager"
        # the registry's dtype whatever the file holds: Florence-2 publishes float16, slow on CPU
        model = getattr(transformers, cls.model_class).from_pretrained(
            source, attn_implementation=attention, dtype=getattr(torch, dtype)
        )
        if cls.joint_processor:
            processor = cast(Any, transformers.AutoProcessor).from_pretrained(source)
            image_processor, tokenizer = processor.image_processor, processor.tokenizer
        else:
            image_processor = cast(Any, transformers.AutoImageProcessor).from_pretrained(source)
            tokenizer = cast(Any, transformers.AutoTokenizer).from_pretrained(source)
        return cls(model_id, model, image_processor, tokenizer)

    @staticmethod
    def vision_config(config: Any) -> Any:
        """The part of a model's configuration that has the vision encoder's ``image_size`` and ``patch_size``."""
        return config.vision_config

    def special_ids(self) -> tuple[list[int], list[int | None]]:
        """The ids every caption starts with, and those that end it."""
        raise NotImplementedError

    def vision_encoder(self) -> torch.nn.Module | None:
        """The vision encoder whose pass decoding and explaining share; ``None`` when there is none to share."""
        return None

    def generate(self, pixels: torch.Tensor, encoded: Encoded | None, kwargs: dict[str, Any]) -> torch.Tensor:
        """``generate`` on the pixels, or on ``encoded`` (from :meth:`encode`) when the family shares it."""
        return self.model.generate(pixel_values=pixels, **kwargs)

    def forward(self, pixels: torch.Tensor, ids: list[int], encoded: Encoded | None = None) -> Pass:
        """Run the model over ``prefix + ids`` once; row ``t`` of everything predicts ``ids[t]``."""
        raise NotImplementedError

    def cross_attentions(self) -> list[torch.nn.Module]:
        """The decoder's cross-attention modules in layer order, whose maps :meth:`replay` re-runs; none (the whole
        pass always runs) where the maps need more than the cross-attention (GIT rolls out its whole stack)."""
        return []

    def cross_index(self, span: slice) -> tuple[Any, ...]:
        """Selects (heads, caption tokens, image positions) from one layer's cross-attention."""
        return (0, slice(None), span)

    def token_rollout(self, run: Pass, n_tokens: int) -> np.ndarray:
        """Token → encoder-input-patch rollout: the mean cross-attention, through the vision rollout."""
        to_image = np.mean([host(r).mean(axis=0) for r in run.rows], axis=0)
        return run.vision_rollout.apply(to_image)

    def span(self, n_tokens: int) -> slice:
        """Positions of ``prefix + ids`` whose outputs predict the ``n_tokens`` caption tokens."""
        return slice(len(self.prefix) - 1, len(self.prefix) - 1 + n_tokens)

    # -- the contract --------------------------------------------------------------------------------
    def pixels(self, image: Image.Image) -> torch.Tensor:
        pixels: torch.Tensor = self.image_processor(images=image.convert("RGB"), return_tensors="pt").pixel_values
        return pixels.to(self.model.device, self.model.dtype)

    def view(self, image: Image.Image) -> Image.Image:
        processor = self.image_processor
        if getattr(processor, "do_center_crop", False):
            crop: dict[str, int] = processor.crop_size
            return ImageOps.fit(image.convert("RGB"), (crop["width"], crop["height"]), Image.Resampling.BICUBIC)
        size: dict[str, int] = processor.size
        width, height = (size["width"], size["height"]) if "width" in size else (size["shortest_edge"],) * 2
        return image.convert("RGB").resize((width, height), Image.Resampling.BICUBIC)

    def view_box(self, size: tuple[int, int]) -> Box:
        if not getattr(self.image_processor, "do_center_crop", False):
            return WHOLE
        width, height = size
        side = min(width, height)
        left, top = (width - side) / 2 / width, (height - side) / 2 / height
        return (left, top, 1.0 - left, 1.0 - top)

    def caption(
        self,
        image: Image.Image,
        config: DecodingConfig,
        reporter: Reporter = SILENT,
        *,
        gradients: bool = False,
        stream: WordStream | None = None,
    ) -> CaptionResult:
        pixels = self.pixels(image)
        start = time.perf_counter()
        encoded = None if gradients or self.vision_encoder() is None else self.encode(pixels)
        ids = self.generate_ids(pixels, config, reporter, encoded, stream)
        seconds = time.perf_counter() - start - (encoded.rollout_seconds if encoded else 0.0)
        result = self._explain_ids(pixels, ids, seconds, gradients=gradients, encoded=encoded)
        return replace(result, view=self.view(image), view_box=self.view_box(image.size))

    def explain(self, image: Image.Image, caption: str, *, gradients: bool = False) -> CaptionResult:
        ids: list[int] = self.tokenizer(caption.strip(), add_special_tokens=False).input_ids
        if not ids:
            raise ValueError("The caption to explain is empty.")
        return self.explain_ids(image, ids, gradients=gradients)

    def explain_ids(self, image: Image.Image, ids: Sequence[int], *, gradients: bool = False) -> CaptionResult:
        return self._explain_ids(self.pixels(image), list(ids), 0.0, gradients=gradients)

    def target_log_prob(self, pixels01: torch.Tensor, ids: Sequence[int]) -> torch.Tensor:
        """log p(``ids`` + end | image) through :meth:`forward`, the pass ``explain`` reads; differentiable (a
        family without an end token scores ``ids`` alone).

        ``pixels01`` is the :meth:`view` in [0, 1]: the processor's own resize of a view is the identity, so only
        its normalisation is left, and it is done here so gradients reach the pixels.
        """
        processor = self.image_processor
        pixels = pixels01 = pixels01.to(self.model.device)  # differentiable: gradients reach the caller's tensor
        if getattr(processor, "do_normalize", True):
            mean = torch.tensor(processor.image_mean, dtype=pixels01.dtype, device=pixels01.device).view(1, -1, 1, 1)
            std = torch.tensor(processor.image_std, dtype=pixels01.dtype, device=pixels01.device).view(1, -1, 1, 1)
            pixels = (pixels01 - mean) / std
        tokens = [*ids] if self.end_id is None else [*ids, self.end_id]
        logp = self.maps_pass(pixels.to(self.model.dtype), tokens).logits.float().log_softmax(-1)
        index = torch.tensor(tokens, device=logp.device)
        return logp[torch.arange(len(tokens), device=logp.device), index].sum()

    # -- shared machinery ----------------------------------------------------------------------------
    def encode(self, pixels: torch.Tensor) -> Encoded:
        """The vision encoder's output and its attention's rollout, computed once per caption.

        Decoding and the teacher-forced pass both read it: at 384 px BLIP's encoder costs more than all its
        decoding steps, so running it twice nearly doubled the time to caption. Each layer's attention is
        reduced to its head mean as the layer returns it, so the (layers, heads, n, n) stack is never held.
        """
        from transformers.modeling_outputs import BaseModelOutput

        encoder = self.vision_encoder()
        if encoder is None:
            raise ValueError(f"{self.label} has no separate vision encoder pass to share.")
        # transformers' output recorders: the class whose output[1] is attention
        attention: type[torch.nn.Module] = cast(Any, type(encoder))._can_record_outputs["attentions"]
        means = list[np.ndarray]()
        layers = [m for m in encoder.modules() if isinstance(m, attention)]

        def keep(_layer: int, _inputs: Any, out: tuple[torch.Tensor, torch.Tensor]) -> None:
            means.append(head_mean(out[1][0]))

        with this_thread(layers, keep), torch.inference_mode(), eager_attention():
            out = encoder(pixel_values=pixels)
        start = time.perf_counter()
        mixed = Rollout.of(means)  # head means of one head each: the same numbers as from the full stack
        seconds = time.perf_counter() - start
        return Encoded(BaseModelOutput(last_hidden_state=out.last_hidden_state), mixed, seconds)

    def generate_ids(
        self,
        pixels: torch.Tensor,
        config: DecodingConfig,
        reporter: Reporter = SILENT,
        encoded: Encoded | None = None,
        stream: WordStream | None = None,
    ) -> list[int]:
        """Decode one caption; returns its token ids without the prompt and the end token.

        ``encoded`` (from :meth:`encode`) skips the vision encoder; the decoder sees exactly the same states.
        ``stream`` gets the words so far after every token; beam search only knows its caption at the end
        (``generate`` streams no beams), so it gets the words once then.
        """
        kwargs = generate_kwargs(config)
        kwargs["stopping_criteria"] = _stopping(reporter, config.max_new_tokens, len(self.prefix))
        beams = config.strategy == "beam"
        if stream is not None and not beams:
            kwargs["streamer"] = _word_streamer(self, stream)
        # sampling draws from torch's global generator, shared with other sessions' threads: own it meanwhile
        if encoded is not None:  # its cache's cross-attention part and its logits serve the teacher-forced pass
            kwargs |= {"return_dict_in_generate": True, "output_logits": not beams}
        rng = global_rng(config.seed) if config.strategy == "sample" else nullcontext()
        modules = [] if encoded is None or beams else self.cross_attentions()  # a beam's pass runs whole
        queries: list[list[torch.Tensor]] = [[] for _ in modules]

        def keep(layer: int, args: tuple[torch.Tensor, ...]) -> None:
            queries[layer].append(args[0])

        with torch.inference_mode(), rng, this_thread(modules, keep, inputs=True):
            generated: Any = self.generate(pixels, encoded, kwargs)
        out: torch.Tensor = generated if encoded is None else generated.sequences
        ids: list[int] = []
        for token in map(int, out[0, len(self.prefix) :]):
            if token in self.stop_ids:
                break
            ids.append(token)
        if encoded is not None:
            encoded.keep_cross(generated.cache)
            encoded.queries = tuple(torch.cat(rows, dim=1) for rows in queries)
            if generated.logits is not None:
                encoded.logits, encoded.decoded = torch.cat(generated.logits)[: len(ids)], tuple(ids)
        if stream is not None and beams:
            stream(tuple(self.words(ids)))
        return ids

    def maps_pass(self, pixels: torch.Tensor, ids: list[int], encoded: Encoded | None = None) -> Pass:
        """:meth:`forward` with eager attention (in this thread only): the pass whose attention is drawn. Its
        logits are decoding's where ``encoded`` kept them for these ``ids`` (the forward then computed none)."""
        with eager_attention():
            replayed = None if encoded is None else self.replay(encoded, ids)
            run = replayed or self.forward(pixels, ids, encoded)
        kept = None if encoded is None else encoded.logits_for(ids)
        return run if kept is None else replace(run, logits=kept)

    def replay(self, encoded: Encoded, ids: list[int]) -> Pass | None:
        """The maps pass from decoding's own cross-attention queries (see the module's docstring), or ``None``
        where decoding kept none for ``ids`` (a beam, another caption, a family without :meth:`cross_attentions`)."""
        logits = encoded.logits_for(ids)  # kept by the same ``generate`` as the queries, so they cover ``ids`` too
        if logits is None or encoded.cross is None or not encoded.queries:
            return None
        span, cache = self.span(len(ids)), encoded.cross_cache()
        states = {self.states_key: encoded.outputs.last_hidden_state}
        attentions = tuple(
            module(queries[:, : span.stop], cache=cache, **states)[1]
            for module, queries in zip(self.cross_attentions(), encoded.queries, strict=True)
        )
        return Pass(logits, attentions, self.cross_index(span), encoded.rollout)

    def words(self, ids: Sequence[int]) -> list[str]:
        """The caption's words: sub-word tokens merged (GPT-2 ``Ġ``, WordPiece ``##``), each decoded alone."""
        tokens: list[str] = self.tokenizer.convert_ids_to_tokens(list(ids))
        return [self._decode([ids[i] for i in span]) for span in merge_subwords(tokens, self.merge_style)]

    def _gradients(self, run: Pass, ids: list[int]) -> np.ndarray:
        """∂ log p(token t) / ∂ attention row t, for every layer and head: (layers, heads, tokens, positions)."""
        device = run.logits.device
        logp = run.logits.float().log_softmax(-1)[
            torch.arange(len(ids), device=device), torch.tensor(ids, device=device)
        ]
        grads = np.zeros((len(run.attentions), *run.rows[0].shape), dtype=np.float32)
        for t in range(len(ids)):
            per_layer = torch.autograd.grad(logp[t], run.attentions, retain_graph=True)
            for layer, g in enumerate(per_layer):
                grads[layer, :, t] = host(g[run.index][:, t])
        return grads

    def _explain_ids(
        self,
        pixels: torch.Tensor,
        ids: list[int],
        seconds: float,
        *,
        gradients: bool,
        encoded: Encoded | None = None,
    ) -> CaptionResult:
        start = time.perf_counter() - (encoded.rollout_seconds if encoded else 0.0)
        if not ids:  # a model may stop at once; show an empty caption rather than fail
            return CaptionResult(self.model_id, "", [], np.zeros((0, *self.grid)), np.zeros(0), [], seconds, self.grid)
        with torch.enable_grad() if gradients else torch.inference_mode():
            if gradients:
                pixels = pixels.clone().requires_grad_(True)  # so attention tensors join the autograd graph
            run = self.maps_pass(pixels, ids, encoded)
            grads = self._gradients(run, ids) if gradients else None
        rows = np.stack([host(r) for r in run.rows])  # float32 whatever the model ran in: MBs per caption
        tokens: list[str] = self.tokenizer.convert_ids_to_tokens(ids)
        spans = tuple(merge_subwords(tokens, self.merge_style))
        n_extra = rows.shape[-1] - self.grid[0] * self.grid[1]
        stack = AttentionStack(rows, self.token_rollout(run, len(ids)), n_extra, self.grid, spans, grads)
        probs = run.logits.detach().float().softmax(-1).cpu()
        token_probs = probs[torch.arange(len(ids)), torch.tensor(ids)].numpy()
        words = self.words(ids)  # what the stream showed while decoding
        word_probs: list[float] = []
        alternatives: list[list[tuple[str, float]]] = []
        for span in spans:
            word_probs.append(float(np.prod(token_probs[list(span)])))
            top = probs[span[0]].topk(TOP_K)
            alternatives.append(
                [(self._decode([int(i)]), float(p)) for p, i in zip(top.values, top.indices, strict=True)]
            )
        return CaptionResult(
            model_id=self.model_id,
            caption=str(self.tokenizer.decode(ids, skip_special_tokens=True)).strip(),
            words=words,
            word_maps=word_maps(stack),
            word_probs=np.array(word_probs),
            alternatives=alternatives,
            seconds=seconds,
            grid=self.grid,
            token_ids=tuple(ids),
            attention=stack,
            tokens=tuple(tokens),
            token_probs=token_probs,
            explain_seconds=time.perf_counter() - start,
        )

    def _decode(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids)).strip()
