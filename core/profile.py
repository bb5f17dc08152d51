"""The deployment profile: what a server lets its visitors do, read once from the environment.

``local`` keeps a laptop's freedom (any hub model, no download cap). ``shared`` is what a public server
(e.g. Streamlit Community Cloud, one process for everyone with the link) needs: only catalogue models are
downloaded, up to a cap, and visitors may add only folders the owner put in the models folder.
Images from links (``core.fetch``) are on in both: their safety rules do not depend on the profile, and an
owner who wants no outbound requests for visitors switches them off with ``VISIONLAB_LINKS=off``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

ProfileName = Literal["local", "shared"]
UserModels = Literal["any", "folders"]

ENV_PROFILE = "VISIONLAB_PROFILE"
ENV_DOWNLOADS = "VISIONLAB_DOWNLOADS"
ENV_MAX_DOWNLOAD_MB = "VISIONLAB_MAX_DOWNLOAD_MB"
ENV_MAX_JOBS = "VISIONLAB_MAX_JOBS"
ENV_SESSION_RESULTS_MB = "VISIONLAB_SESSION_RESULTS_MB"
ENV_LINKS = "VISIONLAB_LINKS"
#: For tests only: lets "image from a link" reach the test's own server on 127.0.0.1/::1 (local profile only).
ENV_TEST_LINKS_LOOPBACK = "VISIONLAB_TEST_LINKS_LOOPBACK"

#: Per profile: (download cap in MB or None, stored results per session in MB, what users may add).
_DEFAULTS: dict[ProfileName, tuple[float | None, float, UserModels]] = {
    "local": (None, 1000.0, "any"),
    "shared": (1000.0, 200.0, "folders"),
}
_SWITCH = {"on": True, "true": True, "1": True, "yes": True, "off": False, "false": False, "0": False, "no": False}


def _switch(env: Mapping[str, str], name: str, default: str) -> bool:
    raw = env.get(name, "").strip().lower() or default
    if raw not in _SWITCH:
        raise ValueError(f"{name} must be 'on' or 'off', not {env.get(name)!r}.")
    return _SWITCH[raw]


def _number(env: Mapping[str, str], name: str, default: float | None) -> float | None:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of megabytes, not {raw!r}.") from None
    if not value > 0 or value == float("inf"):
        raise ValueError(f"{name} must be a positive number, not {raw!r}.")
    return value


@dataclass(frozen=True)
class Profile:
    """What this server allows; one per process (``ui.resources.profile``)."""

    name: ProfileName = "local"
    downloads: bool = True
    max_download_mb: float | None = None
    user_models: UserModels = "any"
    max_jobs: int = 1
    session_results_mb: float = 1000.0
    links: bool = True
    links_loopback: bool = False

    @property
    def shared(self) -> bool:
        return self.name == "shared"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Profile:
        """Parse the ``VISIONLAB_*`` settings; a bad value raises ``ValueError`` with a sentence naming it."""
        raw = env.get(ENV_PROFILE, "").strip().lower() or "local"
        if raw not in _DEFAULTS:
            raise ValueError(f"{ENV_PROFILE} must be 'local' or 'shared', not {env.get(ENV_PROFILE)!r}.")
        name: ProfileName = "shared" if raw == "shared" else "local"
        cap, results_mb, user_models = _DEFAULTS[name]
        loopback = _switch(env, ENV_TEST_LINKS_LOOPBACK, "off")
        if loopback and name == "shared":
            raise ValueError(f"{ENV_TEST_LINKS_LOOPBACK} is for tests and cannot be used with the shared profile.")
        jobs_raw = env.get(ENV_MAX_JOBS, "").strip()
        if jobs_raw and not (jobs_raw.isdigit() and int(jobs_raw) > 0):
            raise ValueError(f"{ENV_MAX_JOBS} must be a whole number of at least 1, not {jobs_raw!r}.")
        return cls(
            name=name,
            downloads=_switch(env, ENV_DOWNLOADS, "on"),
            max_download_mb=_number(env, ENV_MAX_DOWNLOAD_MB, cap),
            user_models=user_models,
            max_jobs=int(jobs_raw) if jobs_raw else os.cpu_count() or 1,
            session_results_mb=_number(env, ENV_SESSION_RESULTS_MB, results_mb) or results_mb,
            links=_switch(env, ENV_LINKS, "on"),
            links_loopback=loopback,
        )

    def download_refusal(self, what: str, size_mb: float | None, *, catalogue: bool) -> str | None:
        """Why this server will not download ``what`` (``size_mb`` of it, ``None`` if unknown), or ``None``."""
        if not self.downloads:
            return (
                f"{what}: this server does not download models; its owner pre-loads them with "
                "`python -m core.models download ID`."
            )
        if self.shared and not catalogue:
            return f"{what}: this shared server downloads only the models of its catalogue."
        if size_mb is None and self.max_download_mb is not None:
            return f"{what}: its download size is unknown, and this server downloads only models of known size."
        if size_mb is not None and self.max_download_mb is not None and size_mb > self.max_download_mb:
            return (
                f"{what}: its download ({size_mb:,.0f} MB) is larger than this server allows "
                f"({self.max_download_mb:,.0f} MB)."
            )
        return None

    def describe(self) -> list[str]:
        """Short plain sentences for Home: what this server allows."""
        lines = [
            "Profile: shared server (public: limits apply to every visitor)."
            if self.shared
            else "Profile: local (one user: no limits beyond the memory budget)."
        ]
        if not self.downloads:
            lines.append("Models are not downloaded here: only the models already on the server can be used.")
        elif self.max_download_mb is None:
            lines.append("Models are downloaded on request, any size.")
        else:
            scope = "Catalogue models" if self.shared else "Models"
            lines.append(f"{scope} are downloaded on request, up to {self.max_download_mb:,.0f} MB each.")
        lines.append(
            "You may add captioners from folders inside the models folder, for your session only."
            if self.user_models == "folders"
            else "You may add captioners by hub id or from folders inside the models folder, for your session only."
        )
        lines.append(
            "Images can be opened from links to public web addresses."
            if self.links
            else "Images cannot be opened from links on this server."
        )
        lines.append(
            f"At most {self.max_jobs} heavy job(s) run at once; your stored results are kept up to "
            f"{self.session_results_mb:,.0f} MB."
        )
        return lines
