"""The "cpu" scan backend: a sequential selective scan compiled by numba, parallel over channels.

The scan is memory-bound and O(B·D·L·N), so a compiled loop that keeps each channel's state (N floats) in L1 beats
any parallel-scan formulation on a CPU. numba ships wheels for Linux, macOS and Windows, so users need no compiler.
The kernels (in `_scan_cpu_kernels`) fuse Δ's bias and softplus, the D·u skip and the SiLU(z) gate, like mamba-ssm's
CUDA kernel, and are written so that LLVM vectorizes them on AVX-512, AVX2, SSE2 and NEON alike
(`_scan_cpu_kernels.compile_target` reports what it did here). The backward recomputes states from checkpoints every
`TIME_BLOCK` steps, so memory stays O(threads·L/TIME_BLOCK·N) beyond inputs and outputs. A third kernel scans
channels-last sequences forward and backward at once, for SS2D's inference (`selective_scan_both_ways_cpu`).

Threads: the kernels run on as many threads as torch uses, on numba's OpenMP layer where it loads (see
`_numba.prefer_openmp_thread_pool`); torch's own thread count is kept as the user set it.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from cmt_geo.errors import ConfigError
from cmt_geo.ops._scan_common import as_grouped


def numba_available() -> bool:
    """True when numba can be imported (without importing it)."""
    return importlib.util.find_spec("numba") is not None


_KERNEL_LOCK = threading.Lock()
"""Serializes kernel runs: numba's workqueue threading layer (where OpenMP and TBB are missing, or forced) aborts the
process when two Python threads run parallel kernels at once; each run already uses every core it is given."""

_ITEMS_PER_THREAD = 4
"""Forward work items per thread: threads take items as they finish (dynamic scheduling), so a core busy with other
work delays the scan by one small item, not by half of it."""


def _kernels(n_state: int) -> Any:
    """The `Kernels` for `n_state` states, set to use as many threads as torch does."""
    from cmt_geo.ops._numba import use_torch_threads

    kernels = _compiled_kernels(n_state)  # first: the kernel module chooses numba's threading layer
    use_torch_threads()
    return kernels


@functools.cache
def _compiled_kernels(n_state: int) -> Any:
    """The kernels, loaded from numba's on-disk cache when possible."""
    from cmt_geo.ops._scan_cpu_kernels import make_kernels

    return make_kernels(n_state)


def _slices(batch: int, groups: int, per_group: int, per_thread: int) -> int:
    """How many work items to cut each (batch, group) into: `per_thread` items per thread, at most one per channel."""
    return max(1, min(per_group, -(-per_thread * torch.get_num_threads() // max(1, batch * groups))))


def _launch(kernel: Callable[..., None], *args: Any) -> None:
    """Run a parallel kernel, one at a time, with dynamic scheduling."""
    import numba

    with _KERNEL_LOCK, numba.parallel_chunksize(1):
        kernel(*args)


def _kernel_inputs(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None,
    z: Tensor | None,
    delta_bias: Tensor | None,
) -> tuple[Tensor, ...]:
    """The kernels' arguments: contiguous fp32, B and C time-major, absent D and bias as zeros, absent z as a stub."""
    f32 = torch.float32
    channels = u.shape[1]
    return (
        u.to(f32).contiguous(),
        delta.to(f32).contiguous(),
        A.to(f32).contiguous(),
        as_grouped(B, f32).transpose(-1, -2).contiguous(),
        as_grouped(C, f32).transpose(-1, -2).contiguous(),
        D.to(f32).contiguous() if D is not None else u.new_zeros(channels, dtype=f32),
        z.to(f32).contiguous() if z is not None else u.new_zeros(1, 1, 1, dtype=f32),
        delta_bias.to(f32).contiguous() if delta_bias is not None else u.new_zeros(channels, dtype=f32),
    )


# Registered as torch operators so that torch.compile keeps them whole in its graphs instead of breaking there.
@torch.library.custom_op("cmt_geo::selective_scan_cpu", mutates_args=(), device_types="cpu")
def selective_scan_cpu(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None,
    z: Tensor | None,
    delta_bias: Tensor | None,
    delta_softplus: bool,
) -> tuple[Tensor, Tensor]:
    """`selective_scan` on CPU tensors with the numba kernels (fp32 inside); returns (out, last state)."""
    forward = _kernels(A.shape[1]).forward
    out = torch.empty(u.shape, dtype=torch.float32)
    last_state = torch.empty(u.shape[0], u.shape[1], A.shape[1], dtype=torch.float32)
    inputs = _kernel_inputs(u, delta, A, B, C, D, z, delta_bias)
    batch, channels, _ = u.shape
    groups = inputs[3].shape[1]
    slices = _slices(batch, groups, channels // groups, _ITEMS_PER_THREAD)
    arrays = (t.numpy() for t in inputs)
    _launch(forward, *arrays, delta_softplus, z is not None, slices, out.numpy(), last_state.numpy())
    return out.to(u.dtype), last_state


@selective_scan_cpu.register_fake
def _(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None,
    z: Tensor | None,
    delta_bias: Tensor | None,
    delta_softplus: bool,
) -> tuple[Tensor, Tensor]:
    return u.new_empty(u.shape), u.new_empty(u.shape[0], u.shape[1], A.shape[1], dtype=torch.float32)


@torch.library.custom_op("cmt_geo::selective_scan_cpu_backward", mutates_args=(), device_types="cpu")
def selective_scan_cpu_backward(
    dout: Tensor,
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None,
    z: Tensor | None,
    delta_bias: Tensor | None,
    delta_softplus: bool,
) -> list[Tensor]:
    """Gradients [du, ddelta, dA, dB, dC, dD, dz, ddelta_bias] in fp32; empty for the absent D, z, delta_bias."""
    backward = _kernels(A.shape[1]).backward
    inputs = _kernel_inputs(u, delta, A, B, C, D, z, delta_bias)
    batch, channels, _ = u.shape
    groups = inputs[3].shape[1]
    slices = _slices(batch, groups, channels // groups, 2)  # each slice adds a (B, G, L, N) part of dB and dC
    f32 = torch.float32
    du, ddelta = torch.empty(u.shape, dtype=f32), torch.empty(u.shape, dtype=f32)
    dz = torch.empty(u.shape, dtype=f32) if z is not None else u.new_zeros(1, 1, 1, dtype=f32)
    dA = torch.empty(batch, *A.shape, dtype=f32)
    dB_parts, dC_parts = (torch.empty(slices, *inputs[3].shape, dtype=f32) for _ in range(2))
    dD, dbias = torch.empty(batch, channels, dtype=f32), torch.empty(batch, channels, dtype=f32)
    _launch(
        backward,
        *(t.numpy() for t in inputs),
        delta_softplus,
        z is not None,
        dout.to(f32).contiguous().numpy(),
        slices,
        *(t.numpy() for t in (du, ddelta, dA, dB_parts, dC_parts, dD, dz, dbias)),
    )
    dB, dC = (parts.sum(0).transpose(-1, -2).reshape(B.shape) for parts in (dB_parts, dC_parts))
    return [
        du,
        ddelta,
        dA.sum(0),
        dB,
        dC,
        dD.sum(0) if D is not None else u.new_empty(0, dtype=f32),
        dz if z is not None else u.new_empty(0, dtype=f32),
        dbias.sum(0) if delta_bias is not None else u.new_empty(0, dtype=f32),
    ]


@selective_scan_cpu_backward.register_fake
def _(
    dout: Tensor,
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None,
    z: Tensor | None,
    delta_bias: Tensor | None,
    delta_softplus: bool,
) -> list[Tensor]:
    def like(x: Tensor | None) -> Tensor:
        return u.new_empty(x.shape if x is not None else (0,), dtype=torch.float32)

    return [like(u), like(delta), like(A), like(B), like(C), like(D), like(z), like(delta_bias)]


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, Tensor]) -> None:
    ctx.save_for_backward(*inputs[:8])
    ctx.delta_softplus = inputs[8]
    ctx.mark_non_differentiable(output[1])


def _backward(ctx: Any, dout: Tensor, _dlast: Tensor | None) -> tuple[Tensor | None, ...]:
    saved = ctx.saved_tensors
    grads = selective_scan_cpu_backward(dout, *saved, ctx.delta_softplus)
    return (*(None if x is None else grad.to(x.dtype) for x, grad in zip(saved, grads, strict=True)), None)


selective_scan_cpu.register_autograd(_backward, setup_context=_setup_context)


@torch.library.custom_op("cmt_geo::selective_scan_both_ways_cpu", mutates_args=(), device_types="cpu")
def selective_scan_both_ways_cpu(
    u: Tensor, delta: Tensor, x_dbl: Tensor, A: Tensor, D: Tensor, delta_bias: Tensor
) -> Tensor:
    """Two selective scans of each sequence (Δ through softplus with `delta_bias`), one forward and one backward in
    time, summed, with channels last; for inference (no gradient). SS2D scans a map's rows and its columns this way
    without a reversed copy of either, and projects both directions at once.

    Args:
        u: (B, L, Dm) the sequences, steps major.
        delta: (2, B, L, Dm) each direction's Δ before bias and softplus, at each step.
        x_dbl: (B, L, 2, R + 2N) each direction's projection at each step; its last 2N entries are B and C.
        A: (2·Dm, N); D and delta_bias: (2·Dm,); direction-major, forward first.

    Returns:
        (B, L, Dm) fp32: the forward scan's output plus the backward scan's, at each step.
    """
    _check_both_ways_inputs(u, delta, x_dbl, A, D, delta_bias)
    kernels = _kernels(A.shape[1])
    batch, _, channels = u.shape
    out = torch.empty(u.shape, dtype=torch.float32)
    arrays = (t.to(torch.float32).contiguous().numpy() for t in (u, delta, x_dbl, A, D, delta_bias))
    _launch(kernels.both_ways_forward, *arrays, _channels_per_item(batch, channels), out.numpy())
    return out


@selective_scan_both_ways_cpu.register_fake
def _(u: Tensor, delta: Tensor, x_dbl: Tensor, A: Tensor, D: Tensor, delta_bias: Tensor) -> Tensor:
    return u.new_empty(u.shape, dtype=torch.float32)


def _check_both_ways_inputs(u: Tensor, delta: Tensor, x_dbl: Tensor, A: Tensor, D: Tensor, delta_bias: Tensor) -> None:
    """Raise `ConfigError` naming the first argument of `selective_scan_both_ways_cpu` whose shape does not fit."""
    if u.dim() != 3 or A.dim() != 2:
        raise ConfigError(
            f"u must be (batch, length, channels) and A (2 * channels, d_state), got {tuple(u.shape)} and "
            f"{tuple(A.shape)}"
        )
    batch, length, channels = u.shape
    d_state = A.shape[1]
    expected = {"delta": (delta, (2, batch, length, channels)), "A": (A, (2 * channels, d_state))}
    expected |= {"D": (D, (2 * channels,)), "delta_bias": (delta_bias, (2 * channels,))}
    for name, (tensor, shape) in expected.items():
        if tuple(tensor.shape) != shape:
            raise ConfigError(f"{name} must have shape {shape} to match u {tuple(u.shape)}, got {tuple(tensor.shape)}")
    if x_dbl.dim() != 4 or tuple(x_dbl.shape[:3]) != (batch, length, 2) or x_dbl.shape[3] < 2 * d_state:
        raise ConfigError(
            f"x_dbl must be (batch, length, 2, rank + 2 * d_state) = ({batch}, {length}, 2, >= {2 * d_state}) to "
            f"match u {tuple(u.shape)} and d_state {d_state}, got {tuple(x_dbl.shape)}"
        )


def _channels_per_item(batch: int, channels: int) -> int:
    """Channels per work item of `both_ways_forward`: `_ITEMS_PER_THREAD` items per thread, each a whole number of
    64-byte lines of a row (16 fp32) unless that leaves fewer than two items per thread (few channels, many
    threads)."""
    per_item = max(1, -(-channels // _slices(batch, 1, channels, _ITEMS_PER_THREAD)))
    whole_lines = -(-per_item // 16) * 16
    return whole_lines if batch * -(-channels // whole_lines) >= 2 * torch.get_num_threads() else per_item
