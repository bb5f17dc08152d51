"""Registry: status offline/online, load order through the real loaders, budget eviction, CLI."""

from __future__ import annotations

import ast
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torchvision.models import resnet18

from core.models import ImageClassifier, ModelError, ModelSpec, Registry, Source, Status
from core.models.__main__ import main as cli
from core.models.files import hf_cached_file, torch_hub_dir, torch_hub_file
from core.models.registry import REPO_ROOT

LOADS: list[str] = []


def fake_loader(spec: ModelSpec, location: Path | None, progress, registry) -> torch.nn.Module:
    """A loader whose model holds ``params_m`` million fp32 parameters, recording each call."""
    LOADS.append(spec.id)
    time.sleep(0.05)
    return torch.nn.Linear(1000, int(spec.params_m * 1000), bias=False)


def fake_spec(model_id: str, params_m: float) -> ModelSpec:
    return ModelSpec(
        id=model_id,
        task="classification",
        family="fake",
        display_name=model_id,
        source=Source.PACKAGE,
        ref="torch",  # an importable package: status "ready"
        loader="tests.test_registry:fake_loader",
        params_m=params_m,
        download_mb=1.0,
        license="MIT",
        input_size=8,
    )


def test_status_offline(registry):
    assert registry.status("efficientnet-lite0").status is Status.READY
    for model_id, size in [("blip-base", "990 MB"), ("vit-gpt2", "982 MB"), ("vgg19", "548 MB")]:
        state = registry.status(model_id)
        assert state.status is Status.UNAVAILABLE
        assert size in state.message and "VISIONLAB_MODELS_DIR" in state.message


def test_status_online_is_downloadable_without_touching_network(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("VISIONLAB_OFFLINE")
    reg = Registry(online=True)
    assert reg.status("blip-base").status is Status.DOWNLOADABLE
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the env var always wins
    assert reg.status("blip-base").status is Status.UNAVAILABLE


def test_unavailable_model_raises_a_ui_message(registry):
    with pytest.raises(ModelError, match="Not available offline"):
        registry.load("resnet18")


def test_builtin_classifier_is_real(effnet, coffee):
    assert isinstance(effnet, ImageClassifier)
    top = effnet.predict(coffee)[0]
    assert top.label == "espresso" and top.prob > 0.8


def _tiny_resnet_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return resnet18(num_classes=1000).state_dict()


def test_local_models_folder_loads_through_the_real_loader(tmp_path):
    state = _tiny_resnet_state()
    (tmp_path / "resnet18").mkdir()
    save_file(state, tmp_path / "resnet18" / "model.safetensors")
    reg = Registry(models_dir=tmp_path, online=False)
    st = reg.status("resnet18")
    assert st.status is Status.READY and st.location == tmp_path / "resnet18"
    model = reg.load("resnet18")
    assert isinstance(model, ImageClassifier) and "layer4 (7×7)" in model.cam_layers
    ref = resnet18()
    ref.load_state_dict(state)
    ref.eval()
    x = torch.rand(1, 3, 64, 64)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(model(x), ref((x - mean) / std))  # normalization lives inside


def test_torch_hub_cache_is_found_and_pth_loads_weights_only(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = torch_hub_file(Registry().get("resnet18"))
    path.parent.mkdir(parents=True)
    torch.save(_tiny_resnet_state(), path)
    reg = Registry(online=False)
    assert reg.status("resnet18").location == path
    assert isinstance(reg.load("resnet18"), ImageClassifier)


def test_corrupt_cache_file_gives_a_clear_error(tmp_path):
    (tmp_path / "resnet18").mkdir()
    (tmp_path / "resnet18" / "model.safetensors").write_bytes(b"not really safetensors")
    reg = Registry(models_dir=tmp_path, online=False)
    with pytest.raises(ModelError, match="could not be loaded"):
        reg.load("resnet18")
    assert not reg.is_loaded("resnet18")


def test_lru_eviction_keeps_memory_under_budget():
    LOADS.clear()
    reg = Registry([fake_spec("a", 1.0), fake_spec("b", 1.0), fake_spec("c", 1.0)], budget_mb=9.0)
    reg.load("a")
    reg.load("b")
    reg.load("a")  # a is now most recently used
    reg.load("c")  # 3 × 3.8 MB > 9 MB: b (least recently used) goes
    assert set(reg.loaded_mb()) == {"a", "c"}
    assert sum(reg.loaded_mb().values()) <= 9.0
    assert LOADS == ["a", "b", "c"]


def test_concurrent_loads_happen_once():
    LOADS.clear()
    reg = Registry([fake_spec("a", 0.1)])
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(reg.load("a"))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert LOADS == ["a"]
    assert all(r is results[0] for r in results)


def test_cli_list_matches_status(capsys):
    assert cli(["list"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert " ready " in lines["efficientnet-lite0"]
    assert " unavailable " in lines["blip-base"] and "990 MB" in lines["blip-base"]
    assert " unavailable " in lines["vgg19"]


def test_cli_export_copies_cached_models(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = torch_hub_file(Registry().get("resnet18"))
    path.parent.mkdir(parents=True)
    torch.save(_tiny_resnet_state(), path)
    assert cli(["export", str(tmp_path / "out")]) == 0
    exported = tmp_path / "out" / "resnet18" / path.name
    assert exported.is_file()
    assert Registry(models_dir=tmp_path / "out", online=False).status("resnet18").location == exported.parent
    assert cli(["download", "blip-base"]) == 1  # offline: a clear error, no traceback
    assert "no network" in capsys.readouterr().err


def test_catalogue_file_names_match_torchvision(registry):
    from torchvision.models import get_weight

    for spec in registry.specs():
        if spec.source is Source.TORCHVISION:
            assert spec.extra["file"] == get_weight(spec.ref).url.rsplit("/", 1)[-1]


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"TORCH_HOME": "/srv/torch"},
        {"TORCH_HOME": "~/th", "XDG_CACHE_HOME": "/xdg"},
        {"XDG_CACHE_HOME": "/xdg"},
        {"XDG_CACHE_HOME": "~/xdg"},
        {"TORCH_HOME": ""},
    ],
)
def test_torch_hub_dir_matches_torch(monkeypatch, env):
    for key in ("TORCH_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert torch_hub_dir() == Path(torch.hub.get_dir())


def test_hf_cache_lookup_matches_huggingface_hub(tmp_path, monkeypatch):
    from huggingface_hub import constants, try_to_load_from_cache

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "models--org--name"

    def agree() -> Path | None:
        hit = try_to_load_from_cache("org/name", "config.json")
        assert hf_cached_file("org/name", "config.json") == (Path(hit) if isinstance(hit, str) else None)
        return hf_cached_file("org/name", "config.json")

    assert agree() is None  # nothing cached
    (repo / "snapshots" / "abc").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc")
    assert agree() is None  # snapshot without the file
    (repo / "snapshots" / "abc" / "config.json").write_text("{}")
    assert agree() == repo / "snapshots" / "abc" / "config.json"
    (repo / "refs" / "main").write_text("def")
    assert agree() is None  # main moved to a revision not downloaded


def test_imagenet_labels_are_torchvisions():
    from torchvision.models import ResNet18_Weights

    from core.models import imagenet_labels

    assert imagenet_labels() == tuple(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def test_imagenet_labels_do_not_import_torchvision():
    code = (
        "import sys\nfrom core.models import imagenet_labels\n"
        "assert len(imagenet_labels()) == 1000\nassert 'torchvision' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)


def test_nothing_loads_a_model_at_import():
    code = (
        "import sys, core.models, core.images, core.samples, core.captioning\n"
        "heavy = ('torch', 'torchvision', 'efficientnet_lite_pytorch', 'transformers', 'streamlit')\n"
        "bad = [m for m in heavy if m in sys.modules]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)


def test_core_never_imports_streamlit():
    for path in (REPO_ROOT / "core").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n.split(".")[0] == "streamlit" for n in names), path


def test_a_model_larger_than_the_budget_is_refused_with_what_fits():
    reg = Registry(online=False)  # the default 1500 MB budget (Community Cloud)
    with pytest.raises(ModelError) as err:
        reg.load("blip-large")
    message = str(err.value)
    assert message.startswith("BLIP large needs about 2,067 MB of memory")
    fits = "Show, Attend and Tell (ShapesWorld), BLIP base, ViT-GPT2, GIT base (COCO), Florence-2 base"
    assert f"Models that fit: {fits}." in message
    assert reg.memory_refusal(reg.get("blip-base")) is None


def test_least_recently_used_models_are_evicted_before_the_next_loads(monkeypatch):
    reg = Registry([fake_spec("a", 1.0), fake_spec("b", 1.0), fake_spec("c", 1.0)], budget_mb=9.0)
    resident_at_load: list[set[str]] = []
    original = fake_loader

    def loader(spec, location, progress, registry):
        resident_at_load.append(set(reg.loaded_mb()))
        return original(spec, location, progress, registry)

    monkeypatch.setattr(sys.modules[__name__], "fake_loader", loader)
    reg.load("a")
    reg.load("b")
    reg.load("c")  # a (least recently used) must be gone before c is built: never three at once
    assert resident_at_load == [set(), {"a"}, {"b"}]


def test_added_models_are_loadable_but_never_listed():
    reg = Registry([fake_spec("a", 0.1)])
    added = reg.register(fake_spec("mine", 0.1))
    assert "mine" in reg and reg.get("mine") is added
    assert [s.id for s in reg.specs()] == ["a"]
    assert isinstance(reg.load("mine"), torch.nn.Module)
    with pytest.raises(ModelError, match="catalogue model"):
        reg.register(fake_spec("a", 0.1))


def test_a_reservation_evicts_other_models_and_holds_its_room_while_it_lasts():
    """Transient work (the sanity check's randomized layers) stays inside the budget beside the model it uses."""
    reg = Registry([fake_spec("a", 1.0), fake_spec("b", 1.0), fake_spec("c", 1.0)], budget_mb=9.0)
    reg.load("a")
    reg.load("b")
    with reg.reserve(4.0, keep=("a",)):  # 3.8 (a) + 3.8 (b) + 4 > 9: b goes, a (in use) stays
        assert set(reg.loaded_mb()) == {"a"}
        reg.load("c")  # 3.8 + 3.8 + 4 > 9 again: the least recently used model goes, not the reservation
        assert set(reg.loaded_mb()) == {"c"}
    reg.load("b")  # the room is given back: two models fit again
    assert set(reg.loaded_mb()) == {"c", "b"}
