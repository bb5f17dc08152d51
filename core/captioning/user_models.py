"""The "Add a model" flow: a hub id or a folder inside the models folder becomes a session's captioner.

What may be added is checked before anything loads: the path may not leave the models folder, the hub id
must look like one, the architecture must have an adapter (:func:`core.captioning.families.family_for`),
and the registry's memory and download limits apply.
"""

from __future__ import annotations

import re
from pathlib import Path

from core.models.registry import ENV_MODELS_DIR, ModelError, Registry
from core.models.spec import ModelSpec, Source
from core.paths import inside

from .families import LOADER, family_for, read_config


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
    folder = inside(models_dir, ref)
    return folder if folder is not None and folder.is_dir() else None


def _hub_config(ref: str) -> tuple[Path, float | None]:
    """The folder holding ``ref``'s downloaded ``config.json``, and its download size from the hub's metadata.

    ``hf_hub_download`` fetches exactly one file and never treats the id as a local directory (transformers'
    ``from_pretrained`` would, and echo that directory's config back).
    """
    from huggingface_hub import hf_hub_download  # pyright: ignore[reportUnknownVariableType] (untyped user_agent)

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
        config = read_config(str(config_dir))  # a folder we checked or downloaded, never ``ref``
    except (OSError, ValueError) as err:
        raise ModelError(f"Could not read the configuration of {ref!r} (not a model?): {err}") from err
    family = family_for(config.model_type)
    vision = family.vision_config(config)
    name = folder.relative_to(registry.models_dir.resolve()).as_posix() if folder and registry.models_dir else ref
    spec = ModelSpec(
        id=f"{'local' if local else 'hf'}:{name}",
        task="captioning",
        family=family.family,
        display_name=f"{name} ({family.family})",
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
