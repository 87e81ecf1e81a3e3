"""The segmentation model: any input size and band count, forward/backward, autocast."""

from __future__ import annotations

import pytest
import torch

from cmt_geo.errors import ConfigError
from cmt_geo.models import ModelConfig, create_model, list_models

LIGHT_PRESETS = ["cmt_unet_tiny", "unetformer", "unet"]


def _forward_backward(model: torch.nn.Module, x: torch.Tensor, num_classes: int) -> None:
    logits = model(x)
    assert logits.shape == (x.shape[0], num_classes, *x.shape[2:])
    logits.logsumexp(dim=1).mean().backward()
    assert x.grad is not None
    assert torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("in_channels", [1, 3, 4, 6])
@pytest.mark.parametrize("name", LIGHT_PRESETS)
def test_light_presets_forward_backward_on_odd_sizes(name: str, in_channels: int) -> None:
    model = create_model(name, num_classes=5, in_channels=in_channels)
    _forward_backward(model, torch.randn(2, in_channels, 45, 71, requires_grad=True), 5)


def test_pure_torch_scan_backend_forward_backward() -> None:
    model = create_model("cmt_unet_tiny", num_classes=3, scan_backend="torch")
    _forward_backward(model, torch.randn(1, 3, 33, 40, requires_grad=True), 3)


@pytest.mark.slow
@pytest.mark.parametrize("in_channels", [1, 3, 4, 6])
@pytest.mark.parametrize("name", ["cmt_unet_base", "cmt_unet_small"])
def test_large_presets_forward_backward_on_an_odd_size(name: str, in_channels: int) -> None:
    model = create_model(name, num_classes=6, in_channels=in_channels)
    _forward_backward(model, torch.randn(1, in_channels, 37, 51, requires_grad=True), 6)


def test_output_is_cropped_back_to_any_input_size() -> None:
    model = create_model("cmt_unet_tiny", num_classes=6).eval()
    with torch.inference_mode():
        assert model(torch.randn(1, 3, 250, 301)).shape == (1, 6, 250, 301)
        assert model(torch.randn(1, 3, 1, 5)).shape == (1, 6, 1, 5)


def test_unaligned_inputs_are_reflect_padded_to_32_and_cropped_back() -> None:
    model = create_model("unetformer", num_classes=3).eval()
    x = torch.randn(1, 3, 50, 70)
    padded = torch.nn.functional.pad(x, (0, 26, 0, 14), mode="reflect")  # to 64 x 96
    with torch.inference_mode():
        logits = model.decoder(model.encoder(padded))
        expected = torch.nn.functional.interpolate(logits, size=(64, 96), mode="bilinear")[..., :50, :70]
        torch.testing.assert_close(model(x), expected)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_forward_backward_on_cpu(dtype: torch.dtype) -> None:
    model = create_model("cmt_unet_tiny", num_classes=4, use_msaa=True, use_rcm=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.autocast("cpu", dtype=dtype):
        logits = model(x)
    assert logits.dtype == dtype
    logits.float().logsumexp(dim=1).mean().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads
    assert all(torch.isfinite(g).all() for g in grads)


def test_model_runs_channels_last_and_matches_the_nchw_layout() -> None:
    model = create_model("cmt_unet_tiny", num_classes=3).eval()
    assert model.encoder.resnet.body.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(1, 3, 64, 96)
    with torch.inference_mode():
        expected = model(x)
        model = model.to(memory_format=torch.contiguous_format)
        torch.testing.assert_close(model(x), expected, atol=1e-4, rtol=1e-4)


def test_wrong_band_count_is_a_clear_error() -> None:
    model = create_model("unet", num_classes=3, in_channels=4)
    with pytest.raises(ConfigError, match=r"expected input \(B, 4, H, W\), got \(1, 3, 32, 32\)"):
        model(torch.randn(1, 3, 32, 32))


@pytest.mark.parametrize(
    "name",
    [pytest.param(name, marks=pytest.mark.slow) if name not in LIGHT_PRESETS else name for name in list_models()],
)
def test_feature_info_describes_the_encoder_outputs_of_every_preset(name: str) -> None:
    model = create_model(name, num_classes=2, in_channels=4).eval()
    with torch.inference_mode():
        features = model.encoder(torch.randn(1, 4, 64, 96))
    described = [(level.channels, level.stride, level.stride) for level in model.feature_info]
    assert [(f.shape[1], 64 // f.shape[2], 96 // f.shape[3]) for f in features] == described
    assert all(64 % f.shape[2] == 0 and 96 % f.shape[3] == 0 for f in features)
    assert [level.stride for level in model.feature_info] == [4, 8, 16, 32]


def test_config_coerces_lists_and_checks_types_and_the_decoder() -> None:
    config = ModelConfig(mamba_dims=[8, 16, 32, 64], dropout=0)  # type: ignore[arg-type]
    assert config.mamba_dims == (8, 16, 32, 64)
    assert isinstance(config.dropout, float)
    with pytest.raises(ConfigError, match=r"mamba_dims must be a tuple of integers, got 'xx'"):
        ModelConfig(mamba_dims="xx")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"model option mamba must be true or false, got 1"):
        ModelConfig(mamba=1)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"decode_channels must be an integer, got 64.0"):
        ModelConfig(decode_channels=64.0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="decoder must be one of"):
        ModelConfig(decoder="fpn")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"scan_backend must be one of \('auto'"):
        ModelConfig(scan_backend="cuda")


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["cmt_unet_tiny", "cmt_unet_base"])
def test_bf16_channels_last_training_step_on_cuda(name: str) -> None:
    model = create_model(name, num_classes=6).cuda().to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(2, 3, 96, 130, device="cuda").to(memory_format=torch.channels_last)
    labels = torch.randint(0, 6, (2, 96, 130), device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits, labels)
    assert logits.shape == (2, 6, 96, 130)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p).all() for p in model.parameters())
