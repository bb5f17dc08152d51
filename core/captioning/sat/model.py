"""Show, Attend and Tell (Xu et al., 2015): a frozen CNN grid encoder and an LSTM with soft attention.

The encoder is the registered EfficientNet-Lite0 cut after an early block, so each of the 14×14 grid
cells sees a small part of the image and attention maps can be checked against object masks. The LSTM
starts from a zero state, so image information reaches it only through attention. One change from the
paper, as in Lu et al. (2017): a step first reads the previous word, then attends and predicts, and the
context feeds the output layer directly. The attention for a word is thus chosen knowing which word came
before it, and a word's map is the evidence it is predicted from rather than a look ahead.

This module is the model and what serving it needs: vocabulary, networks, decoding, checkpoint IO and
the registry loader. Training and evaluation import it, never the other way round.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, Self, cast

import numpy as np
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file  # pyright: ignore[reportUnknownVariableType] (stub: PathLike's parameter left open)
from torch import nn

from core.images import to_tensor
from core.models import ImageClassifier, ModelError, ModelSpec, ProgressFn, Registry
from core.runtime import SILENT, Reporter

from ..metrics import tokenize
from ..types import WHOLE, Box, CaptionResult, DecodingConfig, WordStream

ENCODER_ID = "efficientnet-lite0"
PAD, START, END, UNK = "<pad>", "<start>", "<end>", "<unk>"
SPECIALS = (PAD, START, END, UNK)
PAD_ID, START_ID, END_ID, UNK_ID = range(4)
NEVER = [PAD_ID, START_ID, UNK_ID]  # tokens decoding may not produce
TOP_K = 5
FORMAT = "visionlab-sat-v1"


class Vocab:
    """Word list with the four special tokens first; unknown words map to ``<unk>``."""

    def __init__(self, words: Sequence[str]) -> None:
        if tuple(words[: len(SPECIALS)]) != SPECIALS:
            raise ValueError("A vocabulary starts with the special tokens.")
        self.words = tuple(words)
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def build(cls, captions: Iterable[str], min_count: int = 1) -> Vocab:
        counts = Counter(w for c in captions for w in tokenize(c))
        kept = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
        return cls([*SPECIALS, *kept])

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, caption: str) -> list[int]:
        """``<start> words… <end>`` as ids."""
        return [START_ID, *(self.index.get(w, UNK_ID) for w in tokenize(caption)), END_ID]


@dataclass(frozen=True)
class SatConfig:
    """Architecture hyperparameters, stored in the checkpoint's metadata."""

    image_size: int = 112
    encoder_blocks: int = 5  # EfficientNet-Lite0 blocks kept: 5 → 40 channels on a 14×14 grid at 112 px
    feature_dim: int = 40
    grid: int = 14
    annotation_dim: int = 64
    embed_dim: int = 96
    hidden_dim: int = 256
    attention_dim: int = 64
    dropout: float = 0.2


class GridEncoder(nn.Module):
    """Frozen stem + first blocks of the classifier: [0, 1] pixels → (N, grid², channels) annotations."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, classifier: ImageClassifier, blocks: int) -> None:
        super().__init__()
        net = classifier.net
        self.stem = nn.Sequential(*(net.get_submodule(name) for name in ("_conv_stem", "_bn0", "_swish")))
        self.blocks = nn.Sequential(*cast(nn.ModuleList, net.get_submodule("_blocks"))[:blocks])
        self.register_buffer("mean", classifier.get_buffer("mean").clone())
        self.register_buffer("std", classifier.get_buffer("std").clone())
        self.eval().requires_grad_(False)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        grid = self.blocks(self.stem((pixels - self.mean) / self.std))
        return grid.flatten(2).transpose(1, 2)


@torch.inference_mode()
def encode_images(encoder: GridEncoder, images: Sequence[Image.Image], size: int) -> torch.Tensor:
    """Whole images squeezed to the encoder's square input (no crop, so maps cover every pixel)."""
    pixels = torch.cat([to_tensor(img.convert("RGB"), size) for img in images])
    return encoder(pixels.to(encoder.mean.device))


State = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # LSTM h, c and the last context z


@dataclass(frozen=True)
class Step:
    logits: torch.Tensor  # (n, vocab)
    alpha: torch.Tensor  # (n, cells), sums to 1
    beta: torch.Tensor  # (n,), the gate on the context
    state: State


class SatDecoder(nn.Module):
    """LSTM with additive (Bahdanau) attention, gating scalar β and the paper's deep output layer."""

    def __init__(self, config: SatConfig, vocab_size: int) -> None:
        super().__init__()
        c = config
        self.config = config
        # per cell (1×1): mixing neighbours here would let a word read an object from the cell beside it
        self.adapt = nn.Linear(c.feature_dim, c.annotation_dim)
        # fixed (x, y) cell coordinates, projected: "the next object to the right" is then easy to express
        side = torch.linspace(-1, 1, c.grid)
        self.register_buffer("coords", torch.stack(torch.meshgrid(side, side, indexing="xy"), -1).reshape(-1, 2))
        self.position = nn.Linear(2, c.annotation_dim)
        self.embed = nn.Embedding(vocab_size, c.embed_dim)
        self.att_keys = nn.Linear(c.annotation_dim, c.attention_dim)
        self.att_query = nn.Linear(c.hidden_dim, c.attention_dim)
        self.att_score = nn.Linear(c.attention_dim, 1)
        self.gate = nn.Linear(c.hidden_dim, 1)
        self.lstm = nn.LSTMCell(c.embed_dim + c.annotation_dim, c.hidden_dim)
        self.out_h = nn.Linear(c.hidden_dim, c.embed_dim)
        self.out_z = nn.Linear(c.annotation_dim, c.embed_dim)
        self.out = nn.Linear(c.embed_dim, vocab_size)
        self.drop = nn.Dropout(c.dropout)

    def annotate(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder grid (N, cells, channels) → annotation vectors a_i and their attention keys."""
        a = torch.relu(self.adapt(feats.float())) + self.position(self.coords)
        return a, self.att_keys(a)

    def init_state(self, n: int, device: torch.device) -> State:
        zeros = torch.zeros(n, self.config.hidden_dim, device=device)
        return zeros, zeros, torch.zeros(n, self.config.annotation_dim, device=device)

    def step(self, token: torch.Tensor, state: State, a: torch.Tensor, keys: torch.Tensor) -> Step:
        """Read the word ``token`` (with the last context), attend with the new state, predict the next word."""
        h, c, z = state
        e = self.embed(token)
        h, c = self.lstm(torch.cat([e, z], -1), (h, c))
        alpha = self.att_score(torch.tanh(keys + self.att_query(h)[:, None])).squeeze(-1).softmax(-1)
        beta = torch.sigmoid(self.gate(h))
        z = beta * torch.bmm(alpha[:, None], a).squeeze(1)
        logits = self.out(self.drop(e + self.out_h(h) + self.out_z(z)))
        return Step(logits, alpha, beta.squeeze(-1), (h, c, z))

    def forward(self, feats: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Teacher forcing over ``tokens`` (N, T): logits, attention and β for predicting tokens[:, 1:]."""
        a, keys = self.annotate(feats)
        state = self.init_state(len(tokens), tokens.device)
        logits: list[torch.Tensor] = []
        alphas: list[torch.Tensor] = []
        betas: list[torch.Tensor] = []
        for t in range(tokens.shape[1] - 1):
            out = self.step(tokens[:, t], state, a, keys)
            state = out.state
            logits.append(out.logits)
            alphas.append(out.alpha)
            betas.append(out.beta)
        return torch.stack(logits, 1), torch.stack(alphas, 1), torch.stack(betas, 1)


def _ints(values: torch.Tensor) -> list[int]:
    """A 1-d tensor as Python ints (through numpy, whose ``tolist`` is typed)."""
    return [int(v) for v in values.cpu().numpy()]


def _floats(values: torch.Tensor) -> list[float]:
    return [float(v) for v in values.cpu().numpy()]


@dataclass
class _Path:
    """One hypothesis with everything recorded along its own steps (a beam's own attention path)."""

    tokens: list[int] = field(default_factory=lambda: [START_ID])
    logp: float = 0.0
    probs: list[float] = field(default_factory=list)
    alternatives: list[list[tuple[int, float]]] = field(default_factory=list)
    maps: list[np.ndarray] = field(default_factory=list)
    betas: list[float] = field(default_factory=list)

    def extend(self, token: int, logp: float, probs: torch.Tensor, alpha: torch.Tensor, beta: float) -> _Path:
        top = probs.topk(min(TOP_K, len(probs)))
        return _Path(
            [*self.tokens, token],
            logp,
            [*self.probs, float(probs[token])],
            [*self.alternatives, list(zip(_ints(top.indices), _floats(top.values), strict=True))],
            [*self.maps, alpha.cpu().numpy()],
            [*self.betas, beta],
        )

    @property
    def finished(self) -> bool:
        return self.tokens[-1] == END_ID

    def score(self) -> float:
        """Length-normalised log-probability, so beam search does not favour short captions."""
        return self.logp / max(1, len(self.tokens) - 1)


def _penalise(logits: torch.Tensor, paths: list[_Path], penalty: float) -> torch.Tensor:
    """CTRL-style repetition penalty on words each path already produced."""
    if penalty == 1.0:
        return logits
    logits = logits.clone()
    for row, path in enumerate(paths):
        seen = torch.tensor(sorted(set(path.tokens[1:])), dtype=torch.long)
        if len(seen):
            picked = logits[row, seen]
            logits[row, seen] = torch.where(picked > 0, picked / penalty, picked * penalty)
    return logits


def _nucleus(logits: torch.Tensor, config: DecodingConfig, generator: torch.Generator) -> int:
    """Sample from the smallest set of words whose probability reaches ``top_p``, at ``temperature``."""
    probs = (logits / max(config.temperature, 1e-5)).softmax(-1)
    sorted_probs, order = probs.sort(descending=True)
    keep = sorted_probs.cumsum(-1) - sorted_probs < config.top_p
    keep[0] = True
    kept = sorted_probs * keep
    return int(order[torch.multinomial(kept / kept.sum(), 1, generator=generator)])


@torch.inference_mode()
def decode(
    decoder: SatDecoder,
    feats: torch.Tensor,
    config: DecodingConfig,
    reporter: Reporter = SILENT,
    on_tokens: Callable[[list[int]], None] | None = None,
) -> _Path:
    """Greedy (a beam of 1), beam search or nucleus sampling for one image's features (1, cells, channels).

    Each beam carries its own maps; when beams are reordered the records move with them, so the
    returned maps are exactly those of the returned caption. Greedy and sampled captions hand ``on_tokens``
    their word ids so far (without ``<start>`` and ``<end>``) after every word; beams are not final until the end.
    """
    decoder.eval()
    a, keys = decoder.annotate(feats)
    width = max(1, config.num_beams) if config.strategy == "beam" else 1
    generator = torch.Generator().manual_seed(config.seed)
    paths: list[_Path] = [_Path()]
    done: list[_Path] = []
    state = decoder.init_state(1, feats.device)
    for t in range(config.max_new_tokens + 1):
        reporter.step(t / (config.max_new_tokens + 1), "decoding")
        n = len(paths)
        tokens = torch.tensor([p.tokens[-1] for p in paths], device=feats.device)
        out = decoder.step(tokens, state, a.expand(n, -1, -1), keys.expand(n, -1, -1))
        probs = out.logits.float().softmax(-1).cpu()
        logits = _penalise(out.logits.float().cpu(), paths, config.repetition_penalty)
        logits[:, NEVER] = -math.inf
        if t == config.max_new_tokens:  # out of room: every path ends here
            logits = torch.full_like(logits, -math.inf)
            logits[:, END_ID] = 0.0
        if config.strategy == "sample":
            word = _nucleus(logits[0], config, generator)
            picks = [(0, word, paths[0].logp + math.log(max(float(probs[0, word]), 1e-30)))]
        else:
            total = torch.tensor([p.logp for p in paths])[:, None] + logits.log_softmax(-1)
            top = total.flatten().topk(width - len(done))
            picks = [(int(i) // total.shape[1], int(i) % total.shape[1], float(v)) for v, i in zip(*top, strict=True)]
        extended = [paths[b].extend(w, logp, probs[b], out.alpha[b], float(out.beta[b])) for b, w, logp in picks]
        if on_tokens is not None and width == 1 and not extended[0].finished:
            on_tokens(extended[0].tokens[1:])
        done += [p for p in extended if p.finished]
        rows = [b for (b, _, _), p in zip(picks, extended, strict=True) if not p.finished]
        paths = [p for p in extended if not p.finished]
        if not paths or len(done) >= width:
            break
        index = torch.tensor(rows, device=feats.device)
        h, c, z = out.state
        state = (h[index], c[index], z[index])
    return max(done or paths, key=_Path.score)


@torch.inference_mode()
def greedy_batch(decoder: SatDecoder, feats: torch.Tensor, max_len: int = 20) -> list[list[int]]:
    """Greedy word ids (without ``<end>``) for a batch of feature grids: fast validation during training."""
    decoder.eval()
    a, keys = decoder.annotate(feats)
    state = decoder.init_state(len(feats), feats.device)
    token = torch.full((len(feats),), START_ID, device=feats.device)
    words: list[torch.Tensor] = []
    for _ in range(max_len):
        out = decoder.step(token, state, a, keys)
        out.logits[:, NEVER] = -math.inf
        state, token = out.state, out.logits.argmax(-1)
        words.append(token)
        if bool((torch.stack(words, 1) == END_ID).any(1).all()):
            break
    rows = [_ints(row) for row in torch.stack(words, 1)]
    return [row[: row.index(END_ID)] if END_ID in row else row for row in rows]


class SatCaptioner(nn.Module):
    """The :class:`~core.captioning.types.Captioner` for a Show-Attend-Tell checkpoint."""

    def __init__(
        self,
        encoder: GridEncoder,
        decoder: SatDecoder,
        vocab: Vocab,
        model_id: str = "sat-shapes",
        info: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder.eval().requires_grad_(False)
        self.vocab = vocab
        self.model_id = model_id
        self.config = decoder.config
        self.grid: tuple[int, int] = (self.config.grid, self.config.grid)
        self.info = info or {}

    def features(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return encode_images(self.encoder, images, self.config.image_size)

    def view(self, image: Image.Image) -> Image.Image:
        """The whole image: the encoder squeezes it to a square without cropping, so maps stretch over it."""
        return image.convert("RGB")

    def view_box(self, size: tuple[int, int]) -> Box:
        return WHOLE

    def caption(
        self,
        image: Image.Image,
        config: DecodingConfig,
        reporter: Reporter = SILENT,
        *,
        gradients: bool = False,
        stream: WordStream | None = None,
    ) -> CaptionResult:
        """Decode; ``gradients`` is accepted for the contract and ignored (one soft-attention map per word)."""
        start = time.perf_counter()
        path = decode(self.decoder, self.features([image]), config, reporter, stream and self._stream_ids(stream))
        result = replace(self._result(path, time.perf_counter() - start), view=self.view(image))
        if stream is not None and config.strategy == "beam":
            stream(tuple(result.words))
        return result

    def _stream_ids(self, stream: WordStream) -> Callable[[list[int]], None]:
        """``decode``'s word ids → ``stream``'s words."""
        return lambda ids: stream(tuple(self.vocab.words[i] for i in ids))

    def explain(self, image: Image.Image, caption: str, *, gradients: bool = False) -> CaptionResult:
        """Teacher-forced pass over ``caption``: per-word maps and the model's probability of each word."""
        return self.explain_ids(image, self.vocab.encode(caption)[1:-1])

    def explain_ids(self, image: Image.Image, ids: Sequence[int], *, gradients: bool = False) -> CaptionResult:
        """Teacher-forced pass over vocabulary ids (without ``<start>`` and ``<end>``)."""
        if not ids:
            raise ValueError("The caption to explain is empty.")
        tokens = [START_ID, *ids, END_ID]
        start = time.perf_counter()
        with torch.inference_mode():
            device = self.encoder.mean.device
            logits, alphas, betas = self.decoder(self.features([image]), torch.tensor([tokens], device=device))
        probs = logits[0].float().softmax(-1).cpu()
        path = _Path()
        for t, token in enumerate(tokens[1:]):
            logp = path.logp + math.log(float(probs[t, token]))
            path = path.extend(token, logp, probs[t], alphas[0, t], float(betas[0, t]))
        return self._result(path, time.perf_counter() - start)

    def target_log_prob(self, pixels01: torch.Tensor, ids: Sequence[int]) -> torch.Tensor:
        """log p(``ids`` + ``<end>`` | image): :meth:`explain_ids`' teacher-forced pass, differentiable in ``pixels01``.

        ``pixels01`` is the view in [0, 1]; one of another size than the encoder's input is resized here by
        antialiased bicubic interpolation, the differentiable stand-in for the bicubic resize of :meth:`features`.
        """
        side = self.config.image_size
        pixels = pixels01.to(self.encoder.mean.device)
        if pixels.shape[-2:] != (side, side):
            pixels = torch.nn.functional.interpolate(
                pixels, size=(side, side), mode="bicubic", align_corners=False, antialias=True
            )
        tokens = torch.tensor([[START_ID, *ids, END_ID]], device=pixels.device)
        logits, _, _ = self.decoder(self.encoder(pixels), tokens)
        logp = logits[0].float().log_softmax(-1)
        return logp[torch.arange(tokens.shape[1] - 1), tokens[0, 1:]].sum()

    def _result(self, path: _Path, seconds: float) -> CaptionResult:
        n = len(path.tokens) - 1 - int(path.finished)  # words, without <start> and <end>
        ids = path.tokens[1 : 1 + n]
        words = [self.vocab.words[i] for i in ids]
        maps = np.stack(path.maps[:n]).reshape(n, *self.grid) if n else np.zeros((0, *self.grid))
        return CaptionResult(
            model_id=self.model_id,
            caption=" ".join(words),
            words=words,
            word_maps=maps.astype(np.float64),
            word_probs=np.array(path.probs[:n]),
            alternatives=[[(self.vocab.words[i], p) for i, p in alts] for alts in path.alternatives[:n]],
            seconds=seconds,
            grid=self.grid,
            token_ids=tuple(ids),
            betas=np.array(path.betas[:n]),
            log_prob=path.logp,
            end_prob=path.probs[n] if path.finished else 0.0,
            trained_on=str(self.info.get("trained_on", "")),
        )


# -- checkpoints ---------------------------------------------------------------------------------------
def save_checkpoint(path: Path, decoder: SatDecoder, vocab: Vocab, info: dict[str, Any]) -> None:
    """Decoder weights as safetensors; vocabulary, hyperparameters and training record in its metadata."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in decoder.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "vocab": json.dumps(vocab.words),
        "config": json.dumps(asdict(decoder.config)),
        "info": json.dumps(info),
    }
    write_safetensors(path, tensors, metadata)


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write through a ``.partial`` file, so an interrupted run never leaves half a file to be read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    save_file(tensors, partial, metadata=metadata)
    partial.replace(path)


class SafeTensorsFile(Protocol):
    """The part of ``safetensors.safe_open`` used here, typed (the library's stub is not)."""

    def __enter__(self) -> Self: ...
    def __exit__(self, *exc: object) -> None: ...
    def metadata(self) -> dict[str, str] | None: ...
    def keys(self) -> list[str]: ...
    def get_tensor(self, name: str) -> torch.Tensor: ...


def open_safetensors(path: Path) -> SafeTensorsFile:
    """A lazily read safetensors file (torch tensors): checkpoints and the feature cache."""
    opened: object = safe_open(path, framework="pt")
    return cast(SafeTensorsFile, opened)


def read_checkpoint(path: Path) -> tuple[SatDecoder, Vocab, dict[str, Any]]:
    with open_safetensors(path) as f:
        metadata = f.metadata() or {}
        if metadata.get("format") != FORMAT:
            raise ModelError(f"{path.name} is not a Show-Attend-Tell checkpoint.")
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a mapping)
    vocab = Vocab(json.loads(metadata["vocab"]))
    decoder = SatDecoder(SatConfig(**json.loads(metadata["config"])), len(vocab))
    decoder.load_state_dict(state)
    return decoder, vocab, json.loads(metadata["info"])


def build_encoder(config: SatConfig, progress: ProgressFn, registry: Registry) -> GridEncoder:
    progress(0.2, "Loading the EfficientNet-Lite0 encoder…")
    classifier = registry.load(ENCODER_ID)
    return GridEncoder(classifier, config.encoder_blocks)


def load(spec: ModelSpec, location: Path | None, progress: ProgressFn, registry: Registry) -> SatCaptioner:
    """Registry loader: the checkpoint file (or the first ``.safetensors`` in a models-folder copy)."""
    if location is not None and location.is_dir():
        location = next(iter(sorted(location.glob("*.safetensors"))), None)
    if location is None:
        raise ModelError(f"No {spec.display_name} checkpoint found.")
    progress(0.1, "Reading the decoder…")
    decoder, vocab, info = read_checkpoint(location)
    return SatCaptioner(build_encoder(decoder.config, progress, registry), decoder, vocab, spec.id, info)
