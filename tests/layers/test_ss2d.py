import math

import pytest
import torch
import torch.nn.functional as F

from cmt_geo.layers import ss2d
from cmt_geo.layers.ss2d import SS2D, VSSBlock
from cmt_geo.models import compile_for_inference


def expected_parameters(d_model: int, d_state: int = 16, expand: float = 2.0, d_conv: int = 3) -> int:
    """VMamba v0's SS2D parameter count."""
    d_inner, rank = int(expand * d_model), math.ceil(d_model / 16)
    return (
        d_model * 2 * d_inner  # in_proj
        + d_inner * d_conv * d_conv
        + d_inner  # depthwise conv
        + 4 * (rank + 2 * d_state) * d_inner  # x_proj
        + 4 * d_inner * rank
        + 4 * d_inner  # dt_proj
        + 4 * d_inner * d_state
        + 4 * d_inner  # A_logs, Ds
        + 2 * d_inner  # out_norm
        + d_inner * d_model  # out_proj
    )


@pytest.mark.parametrize("d_model", [16, 96, 100])
def test_parameter_count_matches_vmamba(d_model: int) -> None:
    layer = SS2D(d_model)
    assert sum(p.numel() for p in layer.parameters()) == expected_parameters(d_model)
    assert layer.dt_rank == math.ceil(d_model / 16)


def test_initialization() -> None:
    layer = SS2D(32, dt_min=1e-3, dt_max=0.1)
    step = F.softplus(layer.dt_projs_bias)
    assert step.min() >= 1e-3 * 0.999
    assert step.max() <= 0.1 * 1.001
    torch.testing.assert_close(-torch.exp(layer.A_logs[5]), -torch.arange(1.0, 17.0))
    assert torch.equal(layer.Ds, torch.ones_like(layer.Ds))


@pytest.mark.parametrize(("height", "width"), [(5, 7), (8, 8)])
def test_forward_shape_and_gradients_reach_every_parameter(height: int, width: int) -> None:
    torch.manual_seed(0)
    block = VSSBlock(24, drop_path_rate=0.1)
    x = torch.randn(2, height, width, 24, requires_grad=True)
    out = block(x)
    assert out.shape == x.shape
    out.square().mean().backward()
    assert x.grad is not None
    assert torch.isfinite(x.grad).all()
    for name, parameter in block.named_parameters():
        assert parameter.grad is not None, name
        assert parameter.grad.abs().sum() > 0, name


def test_backends_agree_inside_the_layer() -> None:
    torch.manual_seed(0)
    layer = SS2D(16)
    x = torch.randn(1, 6, 5, 16)
    outputs = {}
    for backend in ("ref", "torch", "cpu"):
        layer.scan_backend = backend
        outputs[backend] = layer(x)
    torch.testing.assert_close(outputs["torch"], outputs["ref"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(outputs["cpu"], outputs["ref"], rtol=1e-5, atol=1e-6)


# For each scan direction: is the first pixel of a pair earlier in that direction's order than the second?
# (top right, bottom left) tells row-major from column-major, (top left, bottom right) forward from reversed.
HEIGHT, WIDTH = 5, 6
PAIRS = (((0, WIDTH - 1), (HEIGHT - 1, 0)), ((0, 0), (HEIGHT - 1, WIDTH - 1)))
ORDER = {0: (True, True), 1: (False, True), 2: (False, False), 3: (True, False)}


def influence(layer: SS2D, x: torch.Tensor, source: tuple[int, int], target: tuple[int, int]) -> float:
    """How much the output at pixel `target` changes with the input at pixel `source`: |d out[target] / d x[source]|."""
    leaf = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(layer(leaf)[0, target[0], target[1]].sum(), leaf)
    return grad[0, source[0], source[1]].abs().sum().item()


@pytest.mark.parametrize("direction", range(4))
def test_each_direction_sees_the_whole_map_in_its_own_order(direction: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """With only one direction's scan output kept, each pixel hears from every pixel before it in that direction's
    order, including the far corner, and from none after it (beyond the 3x3 conv's reach). Fails if any direction is
    dropped or zeroed on the way in (cross_scan), in the layer, or on the way out (cross_merge)."""
    real_scan = ss2d.selective_scan

    def one_direction_only(*args: object, **kwargs: object) -> torch.Tensor:
        ys = real_scan(*args, **kwargs)  # type: ignore[arg-type]
        keep = torch.zeros(ss2d.DIRECTIONS, 1, 1)
        keep[direction] = 1.0
        return (ys.unflatten(1, (ss2d.DIRECTIONS, -1)) * keep).flatten(1, 2)

    monkeypatch.setattr(ss2d, "selective_scan", one_direction_only)
    torch.manual_seed(0)
    layer = SS2D(8, scan_backend="ref").eval()
    x = torch.randn(1, HEIGHT, WIDTH, 8)
    for (first, second), first_is_earlier in zip(PAIRS, ORDER[direction], strict=True):
        earlier, later = (first, second) if first_is_earlier else (second, first)
        assert influence(layer, x, earlier, later) > 1e-6, f"direction {direction}: {earlier} does not reach {later}"
        assert influence(layer, x, later, earlier) == 0.0, f"direction {direction}: {later} reaches {earlier}"


def test_bf16_autocast_forward_and_backward_on_cpu() -> None:
    torch.manual_seed(0)
    block = VSSBlock(16)
    x = torch.randn(2, 6, 6, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = block(x)
    out.float().mean().backward()
    assert torch.isfinite(out.float()).all()
    reference = block(x)
    assert (out.float() - reference).abs().max() / reference.abs().max() < 0.05
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in block.parameters())


@pytest.mark.parametrize(("batch", "height", "width"), [(1, 16, 16), (2, 5, 7), (1, 1, 9), (2, 70, 3), (1, 1, 1)])
def test_cpu_inference_scans_without_copies_and_gives_the_layers_result(
    batch: int, height: int, width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In inference the layer runs the both-ways kernel on the map's rows and on its columns (no cross_scan copies);
    with gradients to track it runs the four-copy scans; both give the same output."""
    calls = {"both_ways": 0, "four_copies": 0}
    for name, key in (("selective_scan_both_ways_cpu", "both_ways"), ("selective_scan", "four_copies")):

        def counted(*args: object, _real: object = getattr(ss2d, name), _key: str = key, **kwargs: object) -> object:
            calls[_key] += 1
            return _real(*args, **kwargs)  # type: ignore[operator]

        monkeypatch.setattr(ss2d, name, counted)
    torch.manual_seed(0)
    layer = SS2D(24).eval()
    with torch.no_grad():  # A, Δ bias and D away from their initial values, as after training
        layer.A_logs.add_(torch.randn_like(layer.A_logs) * 0.3)
        layer.dt_projs_bias.add_(torch.randn_like(layer.dt_projs_bias))
        layer.Ds.add_(torch.randn_like(layer.Ds))
    x = torch.randn(batch, height, width, 24)
    expected = layer(x)
    assert calls == {"both_ways": 0, "four_copies": 1}
    with torch.inference_mode():
        fused = layer(x)
    assert calls == {"both_ways": 2, "four_copies": 1}
    torch.testing.assert_close(fused, expected, rtol=1e-5, atol=1e-6)


def test_fused_scans_only_where_the_cpu_kernel_would_run_without_gradients(monkeypatch: pytest.MonkeyPatch) -> None:
    layer = SS2D(8)
    x = torch.randn(1, 16, 4, 4)
    assert not layer._fused_scan_applies(x)  # parameters that need gradients
    with torch.no_grad():
        assert layer._fused_scan_applies(x)
        assert not layer._fused_scan_applies(x.double())
        assert not layer._fused_scan_applies(x.bfloat16())
        layer.scan_backend = "torch"
        assert not layer._fused_scan_applies(x)
        layer.scan_backend = "auto"
        monkeypatch.setenv("CMTGEO_SCAN_BACKEND", "ref")
        assert not layer._fused_scan_applies(x)
    monkeypatch.delenv("CMTGEO_SCAN_BACKEND")
    layer.requires_grad_(False)
    assert layer._fused_scan_applies(x)  # frozen, as `optimize_for_inference` leaves it
    assert not layer._fused_scan_applies(x.requires_grad_(True))


def test_compiled_for_inference_the_layer_keeps_the_both_ways_scans_and_its_result() -> None:
    """Under `compile_for_inference` (inductor, frozen weights) the code inductor writes calls the both-ways scan op."""
    from torch._inductor.utils import run_and_get_code

    torch.manual_seed(0)
    layer = SS2D(16).eval().requires_grad_(False)
    x = torch.randn(2, 6, 5, 16)
    with torch.inference_mode():
        expected = layer(x)
        actual, (code, *_) = run_and_get_code(compile_for_inference(layer), x)
    assert "_frozen_param" in code  # the weights are constants of the compiled code
    assert code.count("torch.ops.cmt_geo.selective_scan_both_ways_cpu.default(") == 2
    assert "selective_scan_cpu.default(" not in code
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)
