"""The device policy (CUDA, else MPS, else CPU; VISIONLAB_DEVICE overrides), the captioners' dtype setting, and
the registry on a GPU it only believes it has: placement, the GPU budget, estimates in the dtype loaded."""

from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pytest
import torch

from core.captioning.families import LOADER
from core.models import ModelError, Registry
from core.models import device as D
from core.models.registry import HALF_PRECISION_LOADERS, REPO_ROOT
from tests.test_registry import fake_spec

FAKE_GPU = D.DeviceChoice("cuda:0", "CUDA cuda:0 (fake)")


@pytest.fixture
def gpus(monkeypatch):
    """Pretend torch sees ``cuda`` CUDA GPUs and (or not) Apple's MPS."""

    def pretend(cuda: int = 0, mps: bool = False) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: f"Fake GPU {i}")
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)

    return pretend


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"),
    [(2, True, "cuda:0"), (0, True, "mps"), (0, False, "cpu")],
)
def test_auto_prefers_cuda_then_mps_then_cpu(gpus, cuda, mps, expected):
    gpus(cuda, mps)
    for request in (None, "", "auto"):
        choice = D.resolve_device(request)
        assert (choice.name, choice.notice) == (expected, "")
        assert choice.is_gpu == (expected != "cpu")


def test_cuda_label_names_the_gpu(gpus):
    gpus(cuda=2)
    assert D.resolve_device("cuda:1").label == "CUDA cuda:1 (Fake GPU 1)"


@pytest.mark.parametrize(
    ("request_", "expected"),
    [("cpu", "cpu"), ("CPU", "cpu"), ("cuda", "cuda:0"), (" CUDA:1 ", "cuda:1"), ("mps", "mps")],
)
def test_an_available_request_is_honoured(gpus, request_, expected):
    gpus(cuda=2, mps=True)
    assert (D.resolve_device(request_).name, D.resolve_device(request_).notice) == (expected, "")


@pytest.mark.parametrize(
    ("request_", "cuda", "mps", "why"),
    [
        ("gpu", 1, True, "'gpu' is not a device (cpu, cuda, cuda:N or mps): running on the CPU."),
        ("cuda:x", 1, False, "is not a device"),
        ("cuda", 0, True, "asks for CUDA, but torch sees no CUDA GPU here: running on the CPU."),
        ("cuda:2", 2, False, "names GPU 2, but this machine has 2: running on the CPU."),
        ("mps", 1, False, "asks for Apple's MPS, absent here: running on the CPU."),
    ],
)
def test_an_impossible_request_falls_back_to_the_cpu_with_one_sentence(gpus, caplog, request_, cuda, mps, why):
    gpus(cuda, mps)
    with caplog.at_level(logging.WARNING, logger=D.__name__):
        choice = D.resolve_device(request_)
    assert choice.name == "cpu" and not choice.is_gpu
    assert choice.notice.startswith("VISIONLAB_DEVICE=") and why in choice.notice
    assert choice.notice.endswith("running on the CPU.") and ". " not in choice.notice  # one sentence
    assert caplog.messages == [choice.notice]


@pytest.mark.parametrize(
    ("request_", "device", "expected", "notice"),
    [
        (None, FAKE_GPU, "float32", ""),
        ("bfloat16", FAKE_GPU, "bfloat16", ""),
        (" Float16", FAKE_GPU, "float16", ""),
        ("bfloat16", D.CPU, "float32", "applies on a GPU only"),
        ("float16", D.CPU, "float32", "applies on a GPU only"),
        ("fp8", FAKE_GPU, "float32", "is not one of float32, bfloat16, float16"),
    ],
)
def test_caption_dtype_half_precision_only_on_a_gpu(request_, device, expected, notice):
    dtype, said = D.caption_dtype(request_, device)
    assert dtype == expected
    assert (notice in said) if notice else said == ""


def test_place_moves_modules_and_tensors_an_object_holds():
    """On the meta device: a real move of every parameter and tensor, without a GPU."""

    class Holder:
        def __init__(self) -> None:
            self.model = torch.nn.Linear(2, 2)
            self.prompt_ids = torch.tensor([[1, 2]])
            self.name = "kept"

    holder, module = Holder(), torch.nn.Linear(2, 2)
    D.place(holder, "meta")
    D.place(module, "meta")
    assert holder.model.weight.is_meta and holder.prompt_ids.is_meta and holder.name == "kept"
    assert D.module_device(module).type == "meta"
    assert D.module_device(torch.nn.ReLU()).type == "cpu"


def test_host_gives_float32_numpy_from_half_precision():
    t = torch.tensor([1.0, 2.5], dtype=torch.bfloat16, requires_grad=True) * 2
    out = D.host(t)
    assert out.dtype == np.float32 and out.tolist() == [2.0, 5.0]


def test_memory_estimate_follows_the_dtype():
    spec = fake_spec("a", 100.0)
    assert spec.memory_mb == spec.memory_at(4) == 440.0 and spec.memory_at(2) == 220.0


def test_the_transformers_loader_is_the_one_that_takes_half_precision():
    assert LOADER in HALF_PRECISION_LOADERS


@pytest.fixture
def fake_gpu(monkeypatch):
    """The registry resolves a GPU, and "placing" on it records the device instead of moving anything."""
    placed: list[str] = []
    monkeypatch.setattr("core.models.registry.resolve_device", lambda request: FAKE_GPU)
    monkeypatch.setattr("core.models.registry.place", lambda obj, device: placed.append(device))
    return placed


def test_models_load_onto_the_resolved_device_and_count_against_the_gpu_budget(fake_gpu):
    reg = Registry([fake_spec("a", 1.0), fake_spec("b", 1.0)], budget_mb=1.0, gpu_budget_mb=9.0)
    assert reg.device is FAKE_GPU and reg.on_gpu() and reg.model_budget_mb == 9.0
    reg.load("a")
    reg.load("b")  # 2 × 4.4 MB: over the RAM budget, within the GPU one
    assert fake_gpu == ["cuda:0", "cuda:0"] and set(reg.loaded_mb()) == {"a", "b"}
    with reg.reserve(4.0):  # a job's room comes out of the GPU budget too
        assert list(reg.loaded_mb()) == ["b"]


def test_a_model_over_the_gpu_budget_is_refused_in_one_sentence(fake_gpu):
    reg = Registry([fake_spec("big", 5.0), fake_spec("small", 1.0)], budget_mb=1e6, gpu_budget_mb=10.0)
    refusal = reg.memory_refusal(reg.get("big"))
    assert refusal is not None and "more than this server's GPU budget (10 MB)" in refusal
    assert "Models that fit: small." in refusal
    with pytest.raises(ModelError, match="GPU budget"):
        reg.load("big")
    assert fake_gpu == []


def test_captioner_estimates_halve_in_half_precision_on_a_gpu(fake_gpu, monkeypatch):
    monkeypatch.setenv(D.ENV_CAPTION_DTYPE, "bfloat16")
    reg = Registry()
    blip, effnet = reg.get("blip-base"), reg.get("efficientnet-lite0")
    assert reg.caption_dtype() == ("bfloat16", "")
    assert (reg.dtype_for(blip), reg.dtype_for(effnet), reg.dtype_for(reg.get("sat-shapes"))) == (
        "bfloat16",
        "float32",
        "float32",
    )
    assert reg.memory_mb(blip) == blip.memory_at(2) == pytest.approx(blip.memory_mb / 2, abs=0.1)
    assert reg.memory_mb(effnet) == effnet.memory_mb


def test_on_the_cpu_the_dtype_request_is_ignored_with_a_notice(monkeypatch):
    monkeypatch.setenv(D.ENV_DEVICE, "cpu")
    monkeypatch.setenv(D.ENV_CAPTION_DTYPE, "bfloat16")
    reg = Registry(budget_mb=123.0, gpu_budget_mb=456.0)
    dtype, notice = reg.caption_dtype()
    assert dtype == "float32" and "applies on a GPU only" in notice
    assert not reg.on_gpu() and reg.model_budget_mb == 123.0
    blip = reg.get("blip-base")
    assert reg.memory_mb(blip) == blip.memory_mb


def test_from_env_reads_the_gpu_budget_and_requests_are_read_at_resolution(monkeypatch, gpus):
    monkeypatch.setenv(D.ENV_GPU_BUDGET, "2500")
    monkeypatch.setenv(D.ENV_DEVICE, "mps")
    reg = Registry.from_env()
    gpus(cuda=1, mps=True)
    assert reg.gpu_budget_mb == 2500.0 and reg.device.name == "mps"
    assert Registry(device="cpu").device.name == "cpu"  # an explicit request wins over the environment


def test_the_device_is_not_resolved_before_torch_is_imported():
    """Home's cold start: the registry, its status and estimates, and the runtime line never import torch."""
    code = (
        "import sys\nfrom core.models import Registry\nreg = Registry.from_env()\n"
        "assert reg.resolved_device() is None and not reg.on_gpu()\n"
        "assert [reg.memory_refusal(s) for s in reg.specs()] and reg.model_budget_mb == reg.budget_mb\n"
        "assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)


def test_the_cpu_registry_really_loads_on_the_cpu(registry):
    model = registry.load("efficientnet-lite0")
    assert registry.device == D.CPU and D.module_device(model).type == "cpu"
