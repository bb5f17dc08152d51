"""Downloads against a hub twin on 127.0.0.1: sized first, admitted by profile, one writer, verified, resumable.

The real code runs end to end: huggingface_hub's ``model_info`` and our fetcher over HTTP, the registry's
locks, the hub cache layout, and the real captioning loader on what was downloaded.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from huggingface_hub import constants

from core.captioning.user_models import add_user_model
from core.models import ModelError, ModelSpec, NeedsDownload, Registry, Source, Status
from core.models.download import endpoint_address, fetch_url, hub_plan, hub_repo_dir, needed_files
from core.models.files import torch_hub_file
from core.models.registry import REPO_ROOT
from core.profile import Profile
from tests.captioning.tiny_models import save_twin
from tests.hub_server import HubServer, commit_of

REPO = "Salesforce/blip-image-captioning-base"  # the catalogue's blip-base, served by the twin
NEEDED = {
    "config.json",
    "generation_config.json",
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "model.safetensors",
}


@pytest.fixture(scope="module")
def blip_folder(tmp_path_factory) -> Path:
    """A tiny BLIP twin plus what a real repository also holds and a model must never fetch."""
    folder = tmp_path_factory.mktemp("repo") / "blip"
    save_twin("blip-base", folder, small=True)
    (folder / "pytorch_model.bin").write_bytes(os.urandom(4096))
    (folder / "tf_model.h5").write_bytes(os.urandom(2048))
    (folder / "README.md").write_text("# model card\n")
    (folder / ".gitattributes").write_text("*.bin filter=lfs\n")
    (folder / "onnx").mkdir()
    (folder / "onnx" / "model.onnx").write_bytes(os.urandom(1024))
    return folder


@pytest.fixture
def hub(blip_folder, tmp_path, monkeypatch):
    """The twin started, huggingface_hub and the registry pointed at it, caches private to the test."""
    server = HubServer(repos={REPO: blip_folder})
    url = server.start()
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    for key in ("HF_HUB_OFFLINE", "VISIONLAB_OFFLINE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("VISIONLAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    yield server
    server.stop()


def resolved(server: HubServer) -> set[str]:
    return {r.path.rsplit("/", 1)[-1] for r in server.requests if r.method == "GET" and "/resolve/" in r.path}


def blob_of(name: str) -> Path:
    return hub_repo_dir(REPO) / "snapshots" / commit_of(REPO) / name


def test_needed_files_are_configs_and_one_weights_format():
    names = ["config.json", "model.safetensors", "pytorch_model.bin", "tf_model.h5", "README.md", "onnx/model.onnx"]
    assert needed_files(names) == ["config.json", "model.safetensors"]
    bin_only = ["config.json", "pytorch_model.bin", "vocab.txt"]
    assert needed_files(bin_only) == ["config.json", "vocab.txt", "pytorch_model.bin"]
    sharded = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json"]
    assert needed_files([*sharded, "pytorch_model.bin.index.json", "config.json"]) == [
        "config.json",
        "model.safetensors.index.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ]
    assert needed_files(["README.md", "config.json"]) == []


def test_the_registry_probes_the_configured_hub(hub):
    assert endpoint_address() == ("127.0.0.1", int(hub.url.rsplit(":", 1)[1]))
    assert Registry().online


def test_size_is_known_before_anything_is_downloaded(hub, blip_folder):
    plan = hub_plan(REPO)
    assert {f.name for f in plan.files} == NEEDED
    assert plan.size_mb == pytest.approx(sum((blip_folder / n).stat().st_size for n in NEEDED) / 2**20)
    assert plan.commit == commit_of(REPO)
    assert resolved(hub) == set(), "only the file metadata was asked for"


def test_loading_never_downloads_and_a_click_fetches_only_the_needed_files(hub):
    reg = Registry(online=True)
    assert reg.status("blip-base").status is Status.DOWNLOADABLE
    with pytest.raises(NeedsDownload) as err:
        reg.load("blip-base")  # what a link like ?models=blip-base leads to
    assert err.value.size_mb == 990.0 and "990 MB" in str(err.value)
    assert resolved(hub) == set()
    seen: list[float] = []
    model = reg.load("blip-base", lambda f, _m: seen.append(f), download=True)
    assert type(model).__name__ == "BlipCaptioner" and model.grid == (24, 24)
    assert resolved(hub) == NEEDED, "no .bin beside safetensors, no README, no ONNX or TF copies"
    assert seen[-1] == 1.0 and all(0.0 <= f <= 1.0 for f in seen)
    snapshot = reg.status("blip-base").location
    assert snapshot == hub_repo_dir(REPO) / "snapshots" / commit_of(REPO)
    assert (hub_repo_dir(REPO) / "refs" / "main").read_text() == commit_of(REPO)
    assert not list(hub_repo_dir(REPO).rglob("*.partial"))


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        (Profile(max_download_mb=100), "larger than this server allows (100 MB)"),
        (Profile(downloads=False), "does not download models; its owner pre-loads them"),
    ],
)
def test_the_profile_refuses_before_any_byte(hub, profile, message):
    reg = Registry(online=True, profile=profile)
    assert reg.status("blip-base").status is Status.UNAVAILABLE
    assert message in reg.status("blip-base").message
    with pytest.raises(ModelError, match=re.escape(message)):
        reg.download("blip-base")
    with pytest.raises(ModelError, match=re.escape(message)):
        reg.load("blip-base", download=True)
    assert hub.requests == []


def test_a_shared_server_downloads_only_catalogue_models(hub):
    reg = Registry(online=True, profile=Profile.from_env({"VISIONLAB_PROFILE": "shared"}))
    spec = reg.register(ModelSpec(**{**reg.get("blip-base").__dict__, "id": "hf:someone/blip", "download_mb": 1.0}))
    with pytest.raises(ModelError, match="downloads only the models of its catalogue"):
        reg.download(spec.id)
    assert hub.requests == []


def test_two_threads_share_one_download_and_its_progress(hub):
    reg = Registry(online=True)
    hub.hold["model.safetensors"] = release = threading.Event()
    writer_seen: list[tuple[float, str]] = []
    waiter_seen: list[tuple[float, str]] = []
    waiting = threading.Event()
    paths: list[Path] = []

    def waiter_progress(fraction: float, message: str) -> None:
        waiter_seen.append((fraction, message))
        waiting.set()

    writer = threading.Thread(target=lambda: paths.append(reg.download("blip-base", lambda *a: writer_seen.append(a))))
    writer.start()
    assert hub.getting.wait(30), "the writer reached the weights"
    job = reg.download_progress("blip-base")
    assert job is not None and not job.finished
    follower = threading.Thread(target=lambda: paths.append(reg.download("blip-base", waiter_progress)))
    follower.start()
    assert waiting.wait(30), "the second caller follows the running download"
    release.set()
    writer.join(60)
    follower.join(60)
    assert len(hub.get_requests("model.safetensors")) == 1, "one writer"
    assert paths[0] == paths[1] == reg.status("blip-base").location
    assert waiter_seen[-1][0] == 1.0 and writer_seen[-1][0] == 1.0
    assert any("model.safetensors" in m for _, m in writer_seen)
    assert waiter_seen[-1] == writer_seen[-1] == (1.0, "Downloaded and verified."), "the waiter mirrors the writer"
    assert reg.download_progress("blip-base") is None
    weights = blob_of("model.safetensors")
    assert weights.resolve().name == hashlib.sha256(weights.read_bytes()).hexdigest()


def test_another_process_waits_for_the_file_lock_instead_of_writing_too(hub, tmp_path):
    hub.hold["model.safetensors"] = release = threading.Event()
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_CACHE": constants.HF_HUB_CACHE}
    env = {k: v for k, v in env.items() if k not in ("HF_HUB_OFFLINE", "VISIONLAB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    cli = subprocess.Popen(
        [sys.executable, "-m", "core.models", "download", "blip-base"], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE
    )
    try:
        assert hub.getting.wait(60), "the command-line download reached the weights"
        paths: list[Path] = []
        server_side = threading.Thread(target=lambda: paths.append(Registry(online=True).download("blip-base")))
        server_side.start()
        release.set()
        assert cli.wait(60) == 0
        server_side.join(60)
    finally:
        release.set()
        cli.kill()
    assert len(hub.get_requests("model.safetensors")) == 1, "the second process found the finished files"
    assert paths == [blob_of("config.json").parent]


def test_a_corrupted_byte_is_refused_and_deleted(hub, blip_folder):
    hub.corrupt.add("model.safetensors")
    reg = Registry(online=True)
    with pytest.raises(ModelError, match=r"model\.safetensors was corrupted \(its sha256 hash differs"):
        reg.download("blip-base")
    sha = hashlib.sha256((blip_folder / "model.safetensors").read_bytes()).hexdigest()
    assert not (hub_repo_dir(REPO) / "blobs" / sha).exists()
    assert not list(hub_repo_dir(REPO).rglob("*.partial")), "the corrupted copy was deleted"
    assert reg.status("blip-base").status is Status.DOWNLOADABLE, "nothing half-written looks ready"
    hub.corrupt.clear()
    assert reg.download("blip-base") == blob_of("config.json").parent


def test_an_interrupted_download_resumes_where_it_stopped(hub, blip_folder):
    size = (blip_folder / "model.safetensors").stat().st_size
    hub.cut_after["model.safetensors"] = cut = size // 3
    reg = Registry(online=True)
    with pytest.raises(ModelError, match="it resumes on the next try"):
        reg.download("blip-base")
    partial = next(hub_repo_dir(REPO).rglob("*.partial"))
    assert partial.stat().st_size == cut
    reg.download("blip-base")
    assert hub.get_requests("model.safetensors")[-1].range == f"bytes={cut}-"
    assert blob_of("model.safetensors").read_bytes() == (blip_folder / "model.safetensors").read_bytes()
    assert not partial.exists()


def _torchvision_twin(hub: HubServer, data: bytes, digest: str) -> ModelSpec:
    name = f"tiny-{digest[:8]}.pth"
    hub.files[name] = data
    return ModelSpec(
        id="tiny-tv",
        task="classification",
        family="resnet",
        display_name="Tiny torchvision twin",
        source=Source.TORCHVISION,
        ref="ResNet18_Weights.IMAGENET1K_V1",
        loader="core.models.classifiers:load_torchvision",
        params_m=0.1,
        download_mb=0.1,
        license="MIT",
        input_size=8,
        extra={"file": name, "url": f"{hub.url}/files/{name}"},
    )


def test_torchvision_files_resume_with_a_range_request_and_are_checked_against_their_name(hub):
    data = os.urandom(300_000)
    spec = _torchvision_twin(hub, data, hashlib.sha256(data).hexdigest())
    reg = Registry([spec], online=True)
    hub.cut_after[spec.extra["file"]] = 100_000
    with pytest.raises(ModelError, match="it resumes on the next try"):
        reg.download(spec.id)
    assert reg.download(spec.id) == torch_hub_file(spec)
    assert [r.range for r in hub.get_requests(spec.extra["file"])] == [None, "bytes=100000-"]
    assert torch_hub_file(spec).read_bytes() == data


def test_a_torchvision_file_whose_hash_disagrees_with_its_name_is_deleted(hub, tmp_path):
    data = os.urandom(50_000)
    spec = _torchvision_twin(hub, data, "0" * 64)
    with pytest.raises(ModelError, match="was corrupted"):
        Registry([spec], online=True).download(spec.id)
    assert not torch_hub_file(spec).exists()
    assert not list(torch_hub_file(spec).parent.iterdir())
    dest = tmp_path / "direct" / "file.pth"
    fetch_url(f"{hub.url}/files/{spec.extra['file']}", dest, lambda *_: None, size=len(data))  # size only: fine
    assert dest.read_bytes() == data


# -- models a visitor adds -----------------------------------------------------------------------------------
@pytest.fixture
def models_dir(tmp_path) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    return folder


@pytest.mark.parametrize(
    "ref", ["../x", "../../etc", "/etc", "~root", "tests/captioning", "a/b/c", "-x/y", "x--y/z", "x/y.", "x/..", " "]
)
def test_path_like_or_malformed_ids_are_refused_and_never_reach_transformers(hub, models_dir, monkeypatch, ref):
    from transformers import AutoConfig

    given: list[object] = []
    monkeypatch.setattr(AutoConfig, "from_pretrained", lambda *a, **_: given.append(a))
    monkeypatch.chdir(REPO_ROOT)  # where ./tests/captioning is a real folder
    reg = Registry(models_dir=models_dir, online=True)
    with pytest.raises(ModelError, match=r"(neither a folder inside the models folder|Could not read) .*\.") as err:
        add_user_model(reg, ref)
    assert given == [], "transformers would probe the string as a local directory"
    assert "captioning" not in str(err.value).replace(ref, "")  # nothing of that folder is echoed
    assert [s.id for s in reg.specs()] == [s.id for s in Registry().specs()]


def test_a_hub_model_is_sized_from_the_hubs_metadata_and_only_its_config_is_read(hub, blip_folder, models_dir):
    hub.repos["someone/blip"] = blip_folder
    reg = Registry(models_dir=models_dir, online=True)
    spec = add_user_model(reg, "someone/blip")
    assert spec.id == "hf:someone/blip" and spec.family == "blip"
    assert spec.download_mb == pytest.approx(hub_plan("someone/blip").size_mb)
    assert resolved(hub) == {"config.json"}
    assert spec.id not in [s.id for s in reg.specs()], "never listed for other visitors"
    assert reg.status(spec.id).status is Status.DOWNLOADABLE
    assert type(reg.load(spec.id, download=True)).__name__ == "BlipCaptioner"


def test_unknown_or_over_cap_sizes_are_refused(hub, blip_folder, models_dir):
    hub.repos["someone/nosize"] = hub.repos["someone/big"] = blip_folder
    hub.no_sizes.add("someone/nosize")
    capped = Registry(models_dir=models_dir, online=True, profile=Profile(max_download_mb=1))
    with pytest.raises(ModelError, match="its download size is unknown"):
        add_user_model(capped, "someone/nosize")
    with pytest.raises(ModelError, match=r"its download \(\d MB\) is larger than this server allows \(1 MB\)"):
        add_user_model(capped, "someone/big")
    spec = add_user_model(Registry(models_dir=models_dir, online=True), "someone/nosize")  # local, no cap
    assert spec.download_mb is None and spec.download_size == "size unknown"
    shared = Registry(models_dir=models_dir, online=True, profile=Profile.from_env({"VISIONLAB_PROFILE": "shared"}))
    with pytest.raises(ModelError, match="adds only folders inside its models folder"):
        add_user_model(shared, "someone/big")
    assert hub.get_requests("model.safetensors") == []


def test_a_link_never_downloads_and_the_button_does(hub, monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    monkeypatch.delenv("VISIONLAB_MODELS_DIR", raising=False)
    st.cache_resource.clear()  # the registry is cached per process: rebuild it against the twin
    at = AppTest.from_file("../pages/1_Captioning.py", default_timeout=300)
    at.query_params["models"] = ["blip-base"]
    at.query_params["max"] = "3"
    at.run()
    assert not at.exception
    assert hub.requests == [], "opening the link asked the hub for nothing"
    assert "Downloads on request (990 MB)" in " ".join(m.value for m in at.markdown)
    at.button(key="dl_blip-base").click().run()
    assert not at.exception
    assert resolved(hub) == NEEDED
    at.button(key="run_captions").click().run()  # opened from a link: captioning waits for its button too
    assert at.metric and at.metric[0].label == "Time to caption", "downloaded, loaded and captioned"
    st.cache_resource.clear()
