"""The inference-optimized copy of a model: same eval logits for every preset, the original left untouched."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cmt_geo.layers.attention import GlobalLocalAttention
from cmt_geo.layers.fusion import LargeConv2d
from cmt_geo.layers.wavelet import WTConv2d
from cmt_geo.models import create_model, list_models, optimize_for_inference


def _randomize_norms(model: nn.Module, seed: int = 0) -> None:
    """Give every BatchNorm2d statistics and an affine far from identity, so that a wrong fold shows."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                channels = module.num_features
                assert module.running_mean is not None
                assert module.running_var is not None
                module.running_mean.copy_(torch.rand(channels, generator=gen) - 0.5)
                module.running_var.copy_(torch.rand(channels, generator=gen) * 1.5 + 0.5)
                module.weight.copy_(torch.rand(channels, generator=gen) + 0.5)
                module.bias.copy_(torch.rand(channels, generator=gen) * 0.6 - 0.3)
            elif isinstance(module, WTConv2d):
                module.base_scale.copy_(torch.rand(module.base_scale.shape, generator=gen) + 0.5)
                for scale in module.wavelet_scales:
                    scale.copy_(torch.rand(scale.shape, generator=gen) * 0.4)


LARGE_PRESETS = {"cmt_unet_base", "cmt_unet_small"}  # 5-10 s each on 2 cores


@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=pytest.mark.slow) if name in LARGE_PRESETS else name for name in list_models()]
)
def test_optimized_model_matches_the_eval_forward_and_leaves_the_original_alone(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=5, in_channels=4)
    _randomize_norms(model)
    state = {key: value.clone() for key, value in model.state_dict().items()}
    optimized = optimize_for_inference(model)
    assert model.training  # the original keeps its mode, weights and norms
    assert all(torch.equal(state[key], value) for key, value in model.state_dict().items())
    x = torch.randn(2, 4, 40, 70)
    with torch.inference_mode():
        expected = model.eval()(x)
        actual = optimized(x)
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())
    assert not optimized.training
    assert not any(p.requires_grad for p in optimized.parameters())
    # only the base preset's bottleneck has convs with millions of weights (run as matrix products at 40x70)
    assert any(isinstance(m, LargeConv2d) for m in optimized.modules()) == (name == "cmt_unet_base")


def test_optimization_folds_the_norms_after_convs_and_merges_local_branches() -> None:
    model = create_model("cmt_unet_tiny", num_classes=3)
    optimized = optimize_for_inference(model)
    norms = [m for m in optimized.modules() if isinstance(m, nn.BatchNorm2d)]
    # left: the norms before each attention (7 blocks) and before the Mamba context of the 4 fusion blocks
    assert len(norms) == 11 < sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    attentions = [m for m in optimized.modules() if isinstance(m, GlobalLocalAttention)]
    assert attentions
    assert all(m.local2 is None and isinstance(m.local1, nn.Conv2d) for m in attentions)
    assert all(m.scales_folded for m in optimized.modules() if isinstance(m, WTConv2d))


def test_inplace_optimization_rewrites_the_model_itself() -> None:
    torch.manual_seed(0)
    model = create_model("cmt_unet_tiny", num_classes=3)
    _randomize_norms(model)
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        expected = model.eval()(x)
        optimized = optimize_for_inference(model, inplace=True)
        actual = model(x)
    assert optimized is model
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 11
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())
