"""The segmentation model: any input size and band count, forward/backward, autocast, checkpointing, and its
contracts (architecture and runtime options apart, input checks, what a card records)."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import pytest
import torch

from cmt_geo.errors import ConfigError
from cmt_geo.models import ModelConfig, RuntimeOptions, SegmentationModel, create_model, list_models
from cmt_geo.models.segmentation import build_model

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
    with pytest.raises(ConfigError, match=r"mamba_dims must be a sequence of integers, got 'xx'"):
        ModelConfig(mamba_dims="xx")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"model option mamba must be true or false, got 1"):
        ModelConfig(mamba=1)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"decode_channels must be an integer, got 64.0"):
        ModelConfig(decode_channels=64.0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="decoder must be one of"):
        ModelConfig(decoder="fpn")  # type: ignore[arg-type]


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


class DecoderRun(NamedTuple):
    calls: list[int]  # how often each decoder block ran
    saved_bytes: int  # activations the decoder saved for backward
    grads: list[torch.Tensor]


def _decoder_forward_backward(model: torch.nn.Module, features: list[torch.Tensor], blocks: str) -> DecoderRun:
    """Run the decoder alone, forward and backward, watching its `blocks` and what it saves for backward."""
    model.zero_grad()
    calls = [0] * len(getattr(model.decoder, blocks))
    hooks = [  # pre-hooks: a recomputation in backward stops early, as soon as it has what backward needs
        block.register_forward_pre_hook(lambda *_, index=index: calls.__setitem__(index, calls[index] + 1))
        for index, block in enumerate(getattr(model.decoder, blocks))
    ]
    saved: list[int] = []

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        saved.append(tensor.numel() * tensor.element_size())
        return tensor

    torch.manual_seed(1)  # the same dropout draws in every run
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        logits = model.decoder(features)
    logits.logsumexp(dim=1).mean().backward()
    for hook in hooks:
        hook.remove()
    grads = [p.grad.clone() for p in model.decoder.parameters() if p.grad is not None]
    return DecoderRun(calls, sum(saved), grads)


@pytest.mark.parametrize(("name", "blocks"), [("cmt_unet_tiny", "blocks"), ("unet", "stages")])
def test_gradient_checkpointing_reaches_the_decoder(name: str, blocks: str) -> None:
    """Switched on (by create_model or set_gradient_checkpointing), every decoder block runs again in backward
    (recomputed, not stored) and the decoder keeps fewer activations; the gradients stay the same."""
    model = create_model(name, num_classes=3, gradient_checkpointing=True)
    with torch.no_grad():
        features = model.encoder(torch.randn(1, 3, 64, 64).contiguous(memory_format=torch.channels_last))
    on_by_create_model = _decoder_forward_backward(model, features, blocks)
    model.set_gradient_checkpointing(False)
    off = _decoder_forward_backward(model, features, blocks)
    model.set_gradient_checkpointing(True)
    on_by_switch = _decoder_forward_backward(model, features, blocks)
    assert off.calls == [1] * len(off.calls)
    for on in (on_by_create_model, on_by_switch):
        assert on.calls == [2] * len(off.calls)  # forward, and the recomputation in backward
        assert on.saved_bytes < 0.75 * off.saved_bytes  # parts outside the blocks (refinement head) still save theirs
        assert len(on.grads) == len(off.grads)
        for grad, plain_grad in zip(on.grads, off.grads, strict=True):
            torch.testing.assert_close(grad, plain_grad)


def test_architecture_and_runtime_options_are_apart() -> None:
    architecture = {field.name for field in dataclasses.fields(ModelConfig)}
    runtime = {field.name for field in dataclasses.fields(RuntimeOptions)}
    assert runtime == {"scan_backend", "gradient_checkpointing", "fused_attention", "pretrained_backbone"}
    assert not architecture & runtime
    model = create_model("unet", num_classes=2, fused_attention=False, gradient_checkpointing=True)
    assert set(model.architecture_args()) == architecture


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"scan_backend": "cuda"},
            r"model option scan_backend must be one of \('auto', 'mamba', 'cpu', 'torch', 'ref'\)",
        ),
        ({"gradient_checkpointing": 1}, r"model option gradient_checkpointing must be true or false, got 1"),
    ],
)
def test_runtime_options_are_checked(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RuntimeOptions(**options)  # type: ignore[arg-type]


def test_config_checks_literal_choices() -> None:
    with pytest.raises(ConfigError, match=r"model option decoder must be one of \('hybrid', 'unetformer', 'unet'\)"):
        ModelConfig(decoder="fpn")  # type: ignore[arg-type]


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16, torch.int64])
def test_an_integer_batch_is_a_clear_error(dtype: torch.dtype) -> None:
    model = create_model("unet", num_classes=3)
    with pytest.raises(ConfigError, match=rf"floating-point input, got {dtype}; convert it to float and normalize"):
        model(torch.zeros(1, 3, 32, 32, dtype=dtype))


def test_a_custom_model_cannot_be_described_by_a_card() -> None:
    model = create_model("unet", num_classes=3)
    custom = SegmentationModel(model.encoder, model.decoder, in_channels=3, num_classes=3)
    with pytest.raises(ConfigError, match=r"only models made by cmt_geo.models.create_model"):
        custom.architecture_args()
    named = build_model(ModelConfig(backbone="resnet18", mamba=False, decoder="unet"), 3, architecture="unet")
    assert named.architecture_args() == model.architecture_args()
