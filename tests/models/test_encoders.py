"""Encoders and their feature contract."""

from __future__ import annotations

import socket
import time
import urllib.request
from typing import Any

import huggingface_hub.constants
import pytest
import timm
import torch

from cmt_geo.errors import CheckpointError, ConfigError
from cmt_geo.models.encoders import CNNMambaEncoder, ResNetEncoder, VMambaEncoder, adapt_input_conv

TINY_MAMBA: dict[str, Any] = {"dims": (16, 32, 64, 128), "depths": (1, 1, 1, 1), "stem_channels": 8}


def _assert_feature_info_matches(encoder: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    features = encoder(x)
    assert len(features) == len(encoder.feature_info)
    for feature, level in zip(features, encoder.feature_info, strict=True):
        assert feature.shape == (x.shape[0], level.channels, x.shape[2] // level.stride, x.shape[3] // level.stride)
    return features


@pytest.mark.parametrize("in_channels", [1, 4])
def test_resnet_feature_info_matches_outputs(in_channels: int) -> None:
    encoder = ResNetEncoder("resnet18", in_channels)
    assert [level.stride for level in encoder.feature_info] == [4, 8, 16, 32]
    _assert_feature_info_matches(encoder, torch.randn(1, in_channels, 64, 96))


def test_unknown_backbone_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a timm ResNet"):
        ResNetEncoder("vit_tiny_patch16_224")


def test_adapt_input_conv_keeps_responses_to_grey_images() -> None:
    weight = torch.randn(8, 3, 7, 7)
    grey = torch.randn(1, 1, 16, 16)
    reference = torch.nn.functional.conv2d(grey.expand(1, 3, 16, 16), weight)
    for bands in (1, 6):
        adapted = adapt_input_conv(weight, bands)
        assert adapted.shape == (8, bands, 7, 7)
        response = torch.nn.functional.conv2d(grey.expand(1, bands, 16, 16), adapted)
        torch.testing.assert_close(response, reference, atol=1e-4, rtol=1e-4)
    four = adapt_input_conv(weight, 4)
    torch.testing.assert_close(four[:, 3], weight[:, 0] * 0.75)
    assert adapt_input_conv(weight, 3) is weight


class _Connection:
    def close(self) -> None:
        pass


def _hub_answers(monkeypatch: pytest.MonkeyPatch, answers: bool) -> None:
    """Make the hub probe's TCP connect succeed or time out at once (never the real network)."""

    def connect(address: tuple[str, int], timeout: float | None = None) -> _Connection:
        assert timeout is not None, "the hub probe must not wait for the system's connect timeout"
        if not answers:
            raise TimeoutError("timed out")
        return _Connection()

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(urllib.request, "getproxies", dict)
    monkeypatch.setattr(socket, "create_connection", connect)


def _offline_hub(monkeypatch: pytest.MonkeyPatch, name: str) -> torch.nn.Module:
    """Make timm.create_model(name, pretrained=True) return a locally built model (no network); return that model."""
    create = timm.create_model
    hub = create(name, features_only=True, out_indices=(1, 2, 3, 4))

    def offline_create(name: str, **kwargs: Any) -> torch.nn.Module:
        return hub if kwargs.pop("pretrained", False) else create(name, **kwargs)

    monkeypatch.setattr(timm, "create_model", offline_create)
    _hub_answers(monkeypatch, answers=True)
    return hub


def test_pretrained_weights_are_adapted_to_the_band_count(monkeypatch: pytest.MonkeyPatch) -> None:
    hub = _offline_hub(monkeypatch, "resnet18")
    encoder = ResNetEncoder("resnet18", in_channels=5, pretrained=True)
    torch.testing.assert_close(encoder.body.conv1.weight, adapt_input_conv(hub.conv1.weight, 5))
    torch.testing.assert_close(encoder.body.layer4[1].conv2.weight, hub.layer4[1].conv2.weight)


def test_pretrained_deep_stem_resnet_adapts_its_first_conv(monkeypatch: pytest.MonkeyPatch) -> None:
    hub = _offline_hub(monkeypatch, "resnet10t")  # deep stem: conv1 is a Sequential, the first conv is conv1.0
    encoder = ResNetEncoder("resnet10t", in_channels=4, pretrained=True)
    torch.testing.assert_close(encoder.body.conv1[0].weight, adapt_input_conv(hub.conv1[0].weight, 4))
    torch.testing.assert_close(encoder.body.conv1[3].weight, hub.conv1[3].weight)
    _assert_feature_info_matches(encoder, torch.randn(1, 4, 64, 64))


def test_vmamba_feature_info_matches_channels_last_outputs() -> None:
    encoder = VMambaEncoder(3, **TINY_MAMBA)
    features = _assert_feature_info_matches(encoder, torch.randn(2, 3, 64, 32))
    assert all(feature.is_contiguous(memory_format=torch.channels_last) for feature in features)


def test_unreachable_pretrained_weights_are_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    create = timm.create_model

    def offline_create(name: str, **kwargs: Any) -> torch.nn.Module:
        if kwargs.get("pretrained"):
            raise OSError("Network is unreachable")
        return create(name, **kwargs)

    monkeypatch.setattr(timm, "create_model", offline_create)
    _hub_answers(monkeypatch, answers=True)
    with pytest.raises(
        CheckpointError, match=r"could not load pretrained resnet18 weights .* pretrained_backbone=False"
    ):
        ResNetEncoder("resnet18", pretrained=True)


def test_pretrained_weights_without_network_fail_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    create = timm.create_model

    def download(name: str, **kwargs: Any) -> torch.nn.Module:
        assert not kwargs.get("pretrained"), "a download without network retries for about a minute"
        return create(name, **kwargs)

    monkeypatch.setattr(timm, "create_model", download)
    _hub_answers(monkeypatch, answers=False)
    started = time.monotonic()
    with pytest.raises(CheckpointError, match=r"hub \(Hugging Face\) is not reachable; .*HF_HUB_OFFLINE=1.*=False"):
        ResNetEncoder("resnet18", pretrained=True)
    assert time.monotonic() - started < 5


def test_offline_mode_uses_cached_weights_without_probing(monkeypatch: pytest.MonkeyPatch) -> None:
    hub = _offline_hub(monkeypatch, "resnet18")
    _hub_answers(monkeypatch, answers=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    encoder = ResNetEncoder("resnet18", pretrained=True)
    torch.testing.assert_close(encoder.body.layer1[0].conv1.weight, hub.layer1[0].conv1.weight)


def test_vmamba_linear_layers_start_as_in_vmamba() -> None:
    encoder = VMambaEncoder(3, dims=(64, 128, 256, 512), depths=(1, 1, 1, 1), stem_channels=8)
    weight = encoder.stages[3][0].mixer.in_proj.weight
    assert weight.std().item() == pytest.approx(0.02, rel=0.1)
    assert encoder.downsamples[0].reduction.weight.std().item() == pytest.approx(0.02, rel=0.1)


def test_vmamba_needs_four_stages() -> None:
    with pytest.raises(ConfigError, match="4 stages"):
        VMambaEncoder(3, dims=(8, 16), depths=(1, 1))


def _fused(in_channels: int = 3) -> CNNMambaEncoder:
    return CNNMambaEncoder(ResNetEncoder("resnet18", in_channels), VMambaEncoder(in_channels, **TINY_MAMBA), 4)


def test_fused_encoder_feature_info_matches_outputs() -> None:
    encoder = _fused(4)
    assert encoder.feature_info == encoder.resnet.feature_info
    _assert_feature_info_matches(encoder, torch.randn(1, 4, 64, 96))


def test_fused_encoder_feeds_the_mamba_branch_into_the_resnet_stages() -> None:
    encoder = _fused().eval()
    x = torch.randn(1, 3, 64, 64)
    before = encoder(x)
    with torch.no_grad():
        encoder.mamba.patch_embed.bias.add_(1.0)  # changes only the Mamba branch
    after = encoder(x)
    assert all(not torch.allclose(old, new) for old, new in zip(before, after, strict=True))


def test_fused_encoder_asks_for_padded_inputs() -> None:
    with pytest.raises(ConfigError, match="multiples of 32"):
        _fused()(torch.randn(1, 3, 40, 64))


def test_gradient_checkpointing_saves_memory_and_gives_the_same_gradients() -> None:
    torch.manual_seed(0)
    encoder = _fused()
    x = torch.randn(2, 3, 64, 64)
    gradients, saved_bytes = [], []
    for enabled in (False, True):
        torch.manual_seed(1)  # the same stochastic-depth draws in both runs
        for module in encoder.modules():
            if hasattr(module, "gradient_checkpointing"):
                module.gradient_checkpointing = enabled
        encoder.zero_grad()
        sizes: list[int] = []

        def pack(tensor: torch.Tensor, sizes: list[int] = sizes) -> torch.Tensor:
            sizes.append(tensor.numel() * tensor.element_size())
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            loss = sum(feature.square().mean() for feature in encoder(x))
        loss.backward()
        saved_bytes.append(sum(sizes))
        gradients.append(encoder.fusions[0].mlp.fc1.weight.grad.clone())
    assert saved_bytes[1] < saved_bytes[0] / 4  # checkpointed stages keep only their inputs for backward
    torch.testing.assert_close(gradients[0], gradients[1])
