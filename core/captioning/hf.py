"""Hugging Face captioners (BLIP, ViT-GPT2, GIT) behind the :class:`Captioner` protocol.

Attention is never read from ``generate``: BLIP's returns no cross-attention, and per-step shapes
under the KV cache and beam search are easy to misread. Instead every caption is re-run through
one teacher-forced forward pass with ``output_attentions=True`` (models load with eager attention,
since SDPA returns none), so the map drawn for a word is the attention of the query that predicted
it, for greedy, beam and sampled captions alike.
"""

from __future__ import annotations

import re
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image, ImageOps

from core.captioning.attention import AttentionStack, MergeStyle, merge_subwords, rollout, word_maps
from core.models.registry import ENV_MODELS_DIR, ModelError, Registry
from core.models.spec import ModelSpec, ProgressFn, Source
from core.runtime import SILENT, Reporter, global_rng

from .types import CaptionResult, DecodingConfig

Family = Literal["blip", "vit-gpt2", "git"]
LOADER = "core.captioning.hf:load"
TOP_K = 5


def detect_family(model_type: str) -> Family:
    """The supported architecture a ``config.model_type`` belongs to."""
    families: dict[str, Family] = {"blip": "blip", "vision-encoder-decoder": "vit-gpt2", "git": "git"}
    if model_type not in families:
        raise ModelError(
            f"Unsupported captioner architecture {model_type!r}: BLIP, VisionEncoderDecoder (e.g. ViT-GPT2) "
            "and GIT are supported."
        )
    return families[model_type]


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
        def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **_: Any) -> torch.BoolTensor:
            done = input_ids.shape[-1] - prompt_len
            reporter.step(min(done / max(max_new_tokens, 1), 1.0), f"token {done}")
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([_Report()])


def encoder_rollout(attentions: tuple[torch.Tensor, ...]) -> np.ndarray:
    """Rollout through the vision encoder's self-attention (batch of one): (positions, positions)."""
    return rollout([a[0].detach().numpy() for a in attentions])


@dataclass
class Encoded:
    """The vision encoder's output for decoding, its attention already reduced to the rollout.

    BLIP's full encoder attention at 384 px is 190 MB (12 layers × 12 heads × 577²) and only its rollout is
    ever read: :meth:`HFCaptioner.encode` keeps per-layer head means, so the stack is never held at once.
    """

    outputs: Any  # a ``BaseModelOutput`` holding ``last_hidden_state`` only
    rollout: np.ndarray  # (positions, positions)
    rollout_seconds: float  # time spent on the rollout, counted as explaining rather than captioning


@dataclass
class _Pass:
    """One teacher-forced pass: logits predicting each caption token and the attention tensors."""

    logits: torch.Tensor  # (tokens, vocab)
    attentions: tuple[torch.Tensor, ...]  # per layer, as the model returned them (autograd leaves of interest)
    index: tuple[Any, ...]  # selects (heads, tokens, image positions) from each of ``attentions``
    vision_rollout: np.ndarray  # rollout of the vision self-attention (positions, positions)
    decoder: list[torch.Tensor]  # GIT only: full decoder self-attention (heads, n, n)

    @property
    def image_positions(self) -> int:
        """Number of positions the vision encoder outputs (patches plus CLS/extra tokens)."""
        return self.vision_rollout.shape[-1]

    @property
    def rows(self) -> list[torch.Tensor]:
        """Per layer (heads, tokens, positions): each caption token's query over the image positions."""
        return [a[self.index] for a in self.attentions]


class HFCaptioner:
    """A loaded hub captioner. ``caption`` decodes, ``explain`` re-scores a given caption."""

    def __init__(self, model_id: str, family: Family, model: Any, image_processor: Any, tokenizer: Any) -> None:
        self.model_id = model_id
        self.family = family
        self.model = model.eval().requires_grad_(False)
        self.image_processor = image_processor
        self.tokenizer = tokenizer
        vision = model.config.encoder if family == "vit-gpt2" else model.config.vision_config
        side = vision.image_size // vision.patch_size
        self.grid: tuple[int, int] = (side, side)
        self.merge_style: MergeStyle = "wordpiece" if type(tokenizer).__name__.startswith("Bert") else "gpt2"
        if family == "blip":
            self.prefix = [model.config.text_config.bos_token_id]
            self.stop_ids = {model.config.text_config.sep_token_id, model.config.text_config.pad_token_id}
        elif family == "git":
            self.prefix = [tokenizer.cls_token_id]
            self.stop_ids = {tokenizer.sep_token_id, tokenizer.pad_token_id}
        else:
            self.prefix = [model.config.decoder_start_token_id]
            self.stop_ids = {model.config.eos_token_id, model.config.pad_token_id}
        self.stop_ids.discard(None)

    # -- public API --------------------------------------------------------------------------------
    def pixels(self, image: Image.Image) -> torch.Tensor:
        return self.image_processor(images=image.convert("RGB"), return_tensors="pt").pixel_values

    def view(self, image: Image.Image) -> Image.Image:
        """The image as the model sees it (resized, centre-cropped where the processor crops), for overlays."""
        processor = self.image_processor
        if getattr(processor, "do_center_crop", False):
            crop = processor.crop_size
            return ImageOps.fit(image.convert("RGB"), (crop["width"], crop["height"]), Image.Resampling.BICUBIC)
        size = processor.size
        width, height = (size["width"], size["height"]) if "width" in size else (size["shortest_edge"],) * 2
        return image.convert("RGB").resize((width, height), Image.Resampling.BICUBIC)

    def view_box(self, size: tuple[int, int]) -> tuple[float, float, float, float]:
        """The part of an image of ``size`` the model sees, as (left, top, right, bottom) fractions."""
        if not getattr(self.image_processor, "do_center_crop", False):
            return (0.0, 0.0, 1.0, 1.0)
        width, height = size
        side = min(width, height)
        left, top = (width - side) / 2 / width, (height - side) / 2 / height
        return (left, top, 1.0 - left, 1.0 - top)

    def caption(
        self, image: Image.Image, config: DecodingConfig, reporter: Reporter = SILENT, *, gradients: bool = False
    ) -> CaptionResult:
        pixels = self.pixels(image)
        start = time.perf_counter()
        encoded = None if gradients or self.family == "git" else self.encode(pixels)
        ids = self.generate_ids(pixels, config, reporter, encoded)
        seconds = time.perf_counter() - start - (encoded.rollout_seconds if encoded else 0.0)
        return self._explain_ids(pixels, ids, seconds, gradients=gradients, encoded=encoded)

    def explain(self, image: Image.Image, caption: str, *, gradients: bool = False) -> CaptionResult:
        ids = self.tokenizer(caption.strip(), add_special_tokens=False).input_ids
        if not ids:
            raise ValueError("The caption to explain is empty.")
        return self.explain_ids(image, ids, gradients=gradients)

    def explain_ids(self, image: Image.Image, ids: list[int], *, gradients: bool = False) -> CaptionResult:
        """Like ``explain`` for exact token ids: decoded text does not always re-tokenize to the same pieces."""
        return self._explain_ids(self.pixels(image), ids, 0.0, gradients=gradients)

    def encode(self, pixels: torch.Tensor) -> Encoded:
        """The vision encoder's output and its attention's rollout, computed once per caption.

        Decoding and the teacher-forced pass both read it: at 384 px BLIP's encoder costs more than all its
        decoding steps, so running it twice nearly doubled the time to caption (GIT mixes image and text
        tokens in one stack and has no separate encoder pass to share). Each layer's attention is reduced to
        its head mean as the layer returns it, so the (layers, heads, n, n) stack is never held at once.
        """
        from transformers.modeling_outputs import BaseModelOutput

        encoder = self.model.encoder if self.family == "vit-gpt2" else self.model.vision_model
        attention = type(encoder)._can_record_outputs["attentions"]  # the class whose output[1] is attention
        owner, means = threading.get_ident(), []

        def keep(_module: torch.nn.Module, _inputs: Any, out: tuple[torch.Tensor, torch.Tensor]) -> None:
            if threading.get_ident() == owner:  # the model is shared by every session's thread
                means.append(out[1][0].numpy().mean(axis=0, keepdims=True))

        handles = [m.register_forward_hook(keep) for m in encoder.modules() if isinstance(m, attention)]
        try:
            with torch.inference_mode():
                out = encoder(pixel_values=pixels)
        finally:
            for handle in handles:
                handle.remove()
        start = time.perf_counter()
        mixed = rollout(means)  # head means of one head each: the same numbers as from the full stack
        seconds = time.perf_counter() - start
        return Encoded(BaseModelOutput(last_hidden_state=out.last_hidden_state), mixed, seconds)

    def generate_ids(
        self,
        pixels: torch.Tensor,
        config: DecodingConfig,
        reporter: Reporter = SILENT,
        encoded: Encoded | None = None,
    ) -> list[int]:
        """Decode one caption; returns its token ids without the prompt and the end token.

        ``encoded`` (from :meth:`encode`) skips the vision encoder; the decoder sees exactly the same states.
        """
        kwargs = generate_kwargs(config)
        kwargs["stopping_criteria"] = _stopping(reporter, config.max_new_tokens, len(self.prefix))
        # sampling draws from torch's global generator, shared with other sessions' threads: own it meanwhile
        rng = global_rng(config.seed) if config.strategy == "sample" else nullcontext()
        with torch.inference_mode(), rng:
            if encoded is not None and self.family == "vit-gpt2":
                out = self.model.generate(encoder_outputs=encoded.outputs, **kwargs)
            elif encoded is not None:  # what BlipForConditionalGeneration.generate does after its encoder
                states = encoded.outputs.last_hidden_state
                text = self.model.config.text_config
                out = self.model.text_decoder.generate(
                    input_ids=torch.tensor([self.prefix]),
                    eos_token_id=text.sep_token_id,
                    pad_token_id=text.pad_token_id,
                    encoder_hidden_states=states,
                    encoder_attention_mask=torch.ones(states.shape[:-1], dtype=torch.long),
                    **kwargs,
                )
            elif self.family == "vit-gpt2":
                out = self.model.generate(pixels, **kwargs)
            else:
                out = self.model.generate(pixel_values=pixels, **kwargs)
        ids: list[int] = []
        for token in out[0, len(self.prefix) :].tolist():
            if token in self.stop_ids:
                break
            ids.append(token)
        return ids

    # -- teacher-forced pass -------------------------------------------------------------------------
    def forward(self, pixels: torch.Tensor, ids: list[int], encoded: Encoded | None = None) -> _Pass:
        """Run the model over ``prefix + ids`` once; row ``t`` of everything predicts ``ids[t]``.

        ``encoded`` (from :meth:`encode`, BLIP and ViT-GPT2) replaces the vision encoder pass.
        """
        tokens = torch.tensor([self.prefix + ids])
        span = slice(len(self.prefix) - 1, len(self.prefix) - 1 + len(ids))
        index = (0, slice(None), span)
        if self.family == "vit-gpt2":
            source = {"pixel_values": pixels} if encoded is None else {"encoder_outputs": encoded.outputs}
            out = self.model(**source, decoder_input_ids=tokens, output_attentions=True)
            mixed = encoder_rollout(out.encoder_attentions) if encoded is None else encoded.rollout
            return _Pass(out.logits[0, span], out.cross_attentions, index, mixed, [])
        if self.family == "blip":
            if encoded is None:
                vision = self.model.vision_model(pixel_values=pixels, output_attentions=True)
                states, mixed = vision.last_hidden_state, encoder_rollout(vision.attentions)
            else:
                states, mixed = encoded.outputs.last_hidden_state, encoded.rollout
            out = self.model.text_decoder(input_ids=tokens, encoder_hidden_states=states, output_attentions=True)
            return _Pass(out.logits[0, span], out.cross_attentions, index, mixed, [])
        vision = self.model.git.image_encoder(pixel_values=pixels, output_attentions=True)
        out = self.model(input_ids=tokens, pixel_values=pixels, output_attentions=True)
        n_image = out.attentions[0].shape[-1] - tokens.shape[-1]  # image tokens are a prefix of the sequence
        text = slice(n_image + span.start, n_image + span.stop)
        index = (0, slice(None), text, slice(0, n_image))
        decoder = [a[0] for a in out.attentions]
        return _Pass(out.logits[0, text], out.attentions, index, encoder_rollout(vision.attentions), decoder)

    def _rollout(self, run: _Pass, n_tokens: int) -> np.ndarray:
        """Token → encoder-input-patch rollout: through GIT's own self-attention, or the mean cross-attention."""
        n = run.image_positions
        if run.decoder:
            full = rollout([a.detach().numpy() for a in run.decoder])
            to_image = full[n + len(self.prefix) - 1 : n + len(self.prefix) - 1 + n_tokens, :n]
        else:
            to_image = np.mean([r.detach().numpy().mean(axis=0) for r in run.rows], axis=0)
        return to_image @ run.vision_rollout

    def _gradients(self, run: _Pass, ids: list[int]) -> np.ndarray:
        """∂ log p(token t) / ∂ attention row t, for every layer and head: (layers, heads, tokens, positions)."""
        logp = run.logits.log_softmax(-1)[torch.arange(len(ids)), torch.tensor(ids)]
        grads = np.zeros((len(run.attentions), *run.rows[0].shape), dtype=np.float32)
        for t in range(len(ids)):
            per_layer = torch.autograd.grad(logp[t], run.attentions, retain_graph=True)
            for layer, g in enumerate(per_layer):
                grads[layer, :, t] = g[run.index][:, t].numpy()
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
            empty = np.zeros((0, *self.grid))
            return CaptionResult(self.model_id, "", [], empty, np.zeros(0), [], seconds, self.grid, {})
        with torch.enable_grad() if gradients else torch.inference_mode():
            if gradients:
                pixels = pixels.clone().requires_grad_(True)  # so attention tensors join the autograd graph
            run = self.forward(pixels, ids, encoded)
            grads = self._gradients(run, ids) if gradients else None
        rows = np.stack([r.detach().numpy() for r in run.rows]).astype(np.float32)  # MBs per caption: keep it small
        tokens = self.tokenizer.convert_ids_to_tokens(ids)
        spans = tuple(merge_subwords(tokens, self.merge_style))
        n_extra = rows.shape[-1] - self.grid[0] * self.grid[1]
        stack = AttentionStack(rows, self._rollout(run, len(ids)), n_extra, self.grid, spans, grads)
        probs = run.logits.detach().float().softmax(-1)
        token_probs = probs[torch.arange(len(ids)), torch.tensor(ids)].numpy()
        words, word_probs, alternatives = [], [], []
        for span in spans:
            words.append(self.tokenizer.decode([ids[i] for i in span]).strip())
            word_probs.append(float(np.prod(token_probs[list(span)])))
            top = probs[span[0]].topk(TOP_K)
            pairs = zip(top.values.tolist(), top.indices.tolist(), strict=True)
            alternatives.append([(self.tokenizer.decode([i]).strip(), p) for p, i in pairs])
        return CaptionResult(
            model_id=self.model_id,
            caption=self.tokenizer.decode(ids, skip_special_tokens=True).strip(),
            words=words,
            word_maps=word_maps(stack),
            word_probs=np.array(word_probs),
            alternatives=alternatives,
            seconds=seconds,
            grid=self.grid,
            extra={
                "attention": stack,
                "token_ids": ids,
                "tokens": tokens,
                "token_probs": token_probs,
                "explain_seconds": time.perf_counter() - start,
            },
        )


def load(spec: ModelSpec, location: Path | None, progress: ProgressFn, registry: Registry) -> HFCaptioner:
    """Registry loader: ``from_pretrained`` from the local folder the registry found (or downloaded).

    Never the hub id: transformers takes an id that names a local directory as that directory.
    """
    from transformers import AutoConfig, AutoImageProcessor, AutoProcessor, AutoTokenizer

    if location is None:
        raise ModelError("no local copy of the model.")
    source = str(location)
    family = detect_family(AutoConfig.from_pretrained(source).model_type)
    progress(0.2, "Reading weights…")
    if family == "vit-gpt2":
        from transformers import VisionEncoderDecoderModel

        model = VisionEncoderDecoderModel.from_pretrained(source, attn_implementation="eager")
        image_processor = AutoImageProcessor.from_pretrained(source)
        tokenizer = AutoTokenizer.from_pretrained(source)
    else:
        from transformers import BlipForConditionalGeneration, GitForCausalLM

        model_class = BlipForConditionalGeneration if family == "blip" else GitForCausalLM
        model = model_class.from_pretrained(source, attn_implementation="eager")
        processor = AutoProcessor.from_pretrained(source)
        image_processor, tokenizer = processor.image_processor, processor.tokenizer
    progress(0.9, "Preparing…")
    return HFCaptioner(spec.id, family, model, image_processor, tokenizer)


def _weights_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.iterdir() if p.suffix in (".safetensors", ".bin")) / 2**20


#: One component of a hub id: letters, digits, ``-``, ``_``, ``.``; no leading/trailing ``-`` or ``.``.
_HUB_PART = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?")


def is_hub_id(ref: str) -> bool:
    """``owner/name`` by the hub's rules (no ``--`` or ``..``, ≤ 96 characters each): never path-like."""
    parts = ref.split("/")
    return len(parts) == 2 and all(_HUB_PART.fullmatch(p) and "--" not in p and ".." not in p for p in parts)


def models_subfolder(models_dir: Path | None, ref: str) -> Path | None:
    """``ref`` as a folder inside ``models_dir`` (a name or relative path that resolves inside it), or ``None``.

    Absolute paths, ``~`` and ``..`` are refused before anything is resolved, and symlinks may not lead out.
    """
    parts = Path(ref).parts
    if models_dir is None or not parts or Path(ref).is_absolute() or ref.startswith("~") or "\\" in ref:
        return None
    if any(p in (".", "..") for p in parts):
        return None
    root = models_dir.resolve()
    folder = (root / ref).resolve()
    return folder if folder.is_dir() and folder.is_relative_to(root) and folder != root else None


def _hub_config(ref: str) -> tuple[Path, float | None]:
    """The folder holding ``ref``'s downloaded ``config.json``, and its download size from the hub's metadata.

    ``hf_hub_download`` fetches exactly one file and never treats the id as a local directory (transformers'
    ``from_pretrained`` would, and echo that directory's config back).
    """
    from huggingface_hub import hf_hub_download

    from core.models.download import hub_endpoint, hub_plan

    try:
        plan = hub_plan(ref)
        config = hf_hub_download(ref, "config.json", revision=plan.commit, endpoint=hub_endpoint())
    except Exception as err:  # ours, and huggingface_hub's HTTP, offline and not-found errors (no common base)
        raise ModelError(f"Could not read {ref!r} from the hub (offline, or not a model): {err}") from err
    return Path(config).parent, plan.size_mb


def add_user_model(registry: Registry, ref: str) -> ModelSpec:
    """Make a supported captioner loadable by this session: a hub id, or a folder inside the models folder.

    The spec is registered unlisted (the caller keeps its id for its own session only). What may be added
    follows the registry's profile: a shared server adds only folders its owner put in the models folder.
    """
    from transformers import AutoConfig

    ref = ref.strip()
    folder = models_subfolder(registry.models_dir, ref)
    local = folder is not None
    if folder is None and not is_hub_id(ref):
        raise ModelError(
            f"{ref!r} is neither a folder inside the models folder (${ENV_MODELS_DIR}) nor a hub id like 'owner/name'."
        )
    if folder is None and registry.profile.user_models == "folders":
        raise ModelError(
            f"{ref!r}: this server adds only folders inside its models folder (${ENV_MODELS_DIR}), not hub models."
        )
    config_dir, size_mb = (folder, _weights_mb(folder)) if folder is not None else _hub_config(ref)
    try:
        config = AutoConfig.from_pretrained(str(config_dir))  # a folder we checked or downloaded, never ``ref``
    except (OSError, ValueError) as err:
        raise ModelError(f"Could not read the configuration of {ref!r} (not a model?): {err}") from err
    family = detect_family(config.model_type)
    vision = config.encoder if family == "vit-gpt2" else config.vision_config
    name = folder.relative_to(registry.models_dir.resolve()).as_posix() if folder and registry.models_dir else ref
    spec = ModelSpec(
        id=f"{'local' if local else 'hf'}:{name}",
        task="captioning",
        family=family,
        display_name=f"{name} ({family})",
        source=Source.LOCAL if local else Source.HF,
        ref=str(folder) if local else ref,
        loader=LOADER,
        params_m=(size_mb or 0.0) * 2**20 / 4 / 1e6,
        download_mb=size_mb,
        license="see the model card",
        input_size=int(vision.image_size),
        note="Added in this session.",
    )
    refusal = registry.memory_refusal(spec) or (None if local else registry.download_refusal(spec))
    if refusal is not None:
        raise ModelError(refusal)
    return registry.register(spec)
