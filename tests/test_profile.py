"""The deployment profile: defaults per profile, parsing, refusals and Home's sentences."""

from __future__ import annotations

import os

import pytest

from core.profile import Profile


def test_local_is_the_default_and_keeps_todays_freedom():
    p = Profile.from_env({})
    assert (p.name, p.downloads, p.max_download_mb, p.user_models) == ("local", True, None, "any")
    assert p.max_jobs == (os.cpu_count() or 1) and p.session_results_mb == 1000
    assert p.download_refusal("X", 5000, catalogue=False) is None
    assert p.download_refusal("X", None, catalogue=False) is None  # unknown size: allowed without a cap


def test_shared_limits_what_visitors_can_do():
    p = Profile.from_env({"VISIONLAB_PROFILE": " Shared ", "VISIONLAB_MAX_JOBS": "2"})
    assert (p.name, p.max_download_mb, p.user_models, p.max_jobs, p.session_results_mb) == (
        "shared",
        1000,
        "folders",
        2,
        200,
    )
    assert p.download_refusal("BLIP base", 990, catalogue=True) is None
    assert "larger than this server allows (1,000 MB)" in p.download_refusal("BLIP large", 1880, catalogue=True)
    assert "only the models of its catalogue" in p.download_refusal("hf:x/y", 1, catalogue=False)
    assert "size is unknown" in p.download_refusal("X", None, catalogue=True)


def test_settings_override_the_profile_defaults():
    env = {"VISIONLAB_PROFILE": "shared", "VISIONLAB_DOWNLOADS": "off", "VISIONLAB_MAX_DOWNLOAD_MB": "250.5"}
    p = Profile.from_env({**env, "VISIONLAB_SESSION_RESULTS_MB": "50"})
    assert (p.downloads, p.max_download_mb, p.session_results_mb) == (False, 250.5, 50)
    assert "python -m core.models download ID" in p.download_refusal("X", 1, catalogue=True)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"VISIONLAB_PROFILE": "public"}, "VISIONLAB_PROFILE"),
        ({"VISIONLAB_DOWNLOADS": "maybe"}, "VISIONLAB_DOWNLOADS"),
        ({"VISIONLAB_LINKS": "maybe"}, "VISIONLAB_LINKS"),
        ({"VISIONLAB_MAX_DOWNLOAD_MB": "1 GB"}, "VISIONLAB_MAX_DOWNLOAD_MB"),
        ({"VISIONLAB_MAX_DOWNLOAD_MB": "-5"}, "VISIONLAB_MAX_DOWNLOAD_MB"),
        ({"VISIONLAB_MAX_JOBS": "0"}, "VISIONLAB_MAX_JOBS"),
        ({"VISIONLAB_MAX_JOBS": "two"}, "VISIONLAB_MAX_JOBS"),
        ({"VISIONLAB_SESSION_RESULTS_MB": "nan"}, "VISIONLAB_SESSION_RESULTS_MB"),
    ],
)
def test_bad_values_raise_a_sentence_naming_the_setting(env, named):
    with pytest.raises(ValueError, match=f"^{named} must be .*\\.$"):
        Profile.from_env(env)


def test_home_sentences_say_what_the_profile_allows():
    shared = " ".join(Profile.from_env({"VISIONLAB_PROFILE": "shared", "VISIONLAB_MAX_JOBS": "2"}).describe())
    assert "shared server" in shared and "up to 1,000 MB each" in shared
    assert "folders inside the models folder, for your session only" in shared and "hub id" not in shared
    assert "At most 2 heavy job(s)" in shared
    assert "opened from links to public web addresses" in shared
    off = " ".join(Profile.from_env({"VISIONLAB_DOWNLOADS": "off", "VISIONLAB_LINKS": "off"}).describe())
    assert "not downloaded here" in off and "hub id" in off and "cannot be opened from links" in off
