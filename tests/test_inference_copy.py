"""The BN-folded channels-last evaluator that attack curves classify with: same outputs, no BN left."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import nn
from torchvision.models import resnet18

from core.models.inference import inference_copy


def _bn_count(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def _randomize_bn(model: nn.Module) -> nn.Module:
    """Non-trivial running statistics and affine parameters, so folding has something to get wrong."""
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=gen) * 0.1)
    return model.eval()


def test_efficientnet_evaluator_folds_every_bn_and_keeps_the_predictions(effnet, coffee):
    before = _bn_count(effnet)
    evaluator = effnet.evaluator
    assert evaluator is effnet.evaluator  # built once
    assert before == 49 and _bn_count(evaluator) == 0
    assert _bn_count(effnet) == before  # the original (used for gradients) is untouched
    conv = next(m for m in evaluator.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    # the 12 symmetric "same" paddings moved into their convs; only the 5 asymmetric (stride-2) ones remain
    pads = [m for m in evaluator.modules() if isinstance(m, nn.ZeroPad2d)]
    assert [p.padding for p in pads].count((0, 1, 0, 1)) == 3 and len(pads) == 5
    # every ReLU6 reads a conv's output that nothing else reads, so all may work in place
    assert all(m.inplace for m in evaluator.modules() if isinstance(m, nn.ReLU6))
    batch = torch.cat([coffee, coffee.flip(-1), torch.rand_like(coffee)])
    with torch.inference_mode():
        ours, plain = evaluator(batch).softmax(-1), effnet(batch).softmax(-1)
    torch.testing.assert_close(ours, plain, rtol=0, atol=1e-5)
    assert torch.equal(ours.argmax(-1), plain.argmax(-1))
    assert effnet.labels[int(ours[0].argmax())] == "espresso"


def test_resnet_with_real_bn_statistics_folds_to_the_same_function():
    net = _randomize_bn(resnet18())
    twin = inference_copy(net, torch.rand(2, 3, 64, 64))
    assert _bn_count(net) == 20 and _bn_count(twin) == 0
    x = torch.rand(2, 3, 64, 64)  # not the probe
    with torch.inference_mode():
        torch.testing.assert_close(twin(x), net(x), rtol=1e-4, atol=1e-4)


class _Shared(nn.Module):
    """A conv whose output also feeds a skip path: folding the BN into it, or a ReLU working in place on
    the BN's output, would change that path."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn, self.act = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        z = self.bn(y)
        return self.act(z) + y + z


def test_a_network_without_batchnorm_is_not_copied():
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten())
    assert inference_copy(net, torch.rand(1, 3, 8, 8)) is net


def test_a_conv_or_activation_whose_input_is_read_elsewhere_keeps_its_bn_and_its_copy():
    net = _randomize_bn(_Shared())
    twin = inference_copy(net, torch.rand(2, 3, 16, 16) - 0.5)
    assert _bn_count(twin) == 1
    assert not any(getattr(m, "inplace", False) for m in twin.modules())
    x = torch.rand(2, 3, 16, 16) - 0.5
    with torch.inference_mode():
        torch.testing.assert_close(twin(x), net(x))


def test_building_a_copy_leaves_other_threads_forward_passes_alone(effnet):
    """Sessions share models: a copy built in one thread must not disturb another's forward pass (FX
    tracing would, by patching ``nn.Module.__call__`` process-wide)."""
    x = torch.rand(1, 3, 224, 224)
    with torch.inference_mode():
        expected = effnet(x)
    stop = threading.Event()

    def forwards() -> int:
        done = 0
        while not stop.is_set():
            with torch.inference_mode():
                torch.testing.assert_close(effnet(x), expected, rtol=0, atol=0)
            done += 1
        return done

    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(forwards)
        for _ in range(3):
            inference_copy(effnet, torch.rand(2, 3, 224, 224))
        stop.set()
        assert running.result() > 0
