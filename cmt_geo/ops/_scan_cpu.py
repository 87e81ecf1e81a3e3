"""The "cpu" scan backend: a sequential selective scan compiled by numba, parallel over channels.

The scan is memory-bound and O(B·D·L·N), so a compiled loop that keeps each channel's state (N floats) in registers
beats any parallel-scan formulation on a CPU. numba ships wheels for Linux, macOS and Windows, so users need no
compiler. The kernels (in `_scan_cpu_kernels`) fuse Δ's bias and softplus, the D·u skip and the SiLU(z) gate, like
mamba-ssm's CUDA kernel. The backward recomputes each channel's states and decays in (L, N) scratch buffers, so
memory stays O(threads·L·N) beyond inputs and outputs.
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Any

import torch
from torch import Tensor


def numba_available() -> bool:
    """True when numba can be imported (without importing it)."""
    return importlib.util.find_spec("numba") is not None


@functools.cache
def _kernels(n_state: int) -> Any:
    """The compiled (forward, backward) kernels for `n_state` states, loaded from numba's cache when possible."""
    from cmt_geo.ops._scan_cpu_kernels import make_kernels

    return make_kernels(n_state)


def _as_state_layout(x: Tensor, dtype: torch.dtype) -> Tensor:
    """B or C as contiguous (batch, groups, length, d_state) in `dtype`."""
    if x.dim() == 3:
        x = x.unsqueeze(1)
    return x.to(dtype).transpose(-1, -2).contiguous()


class SelectiveScanCpu(torch.autograd.Function):
    """`selective_scan` on CPU tensors with the numba kernels (computed in fp32); returns (out, last state)."""

    @staticmethod
    def forward(
        ctx: Any,
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
        forward_kernel, _ = _kernels(A.shape[1])
        f32 = torch.float32
        channels = u.shape[1]
        inputs = (
            u.to(f32).contiguous(),
            delta.to(f32).contiguous(),
            A.to(f32).contiguous(),
            _as_state_layout(B, f32),
            _as_state_layout(C, f32),
            D.to(f32).contiguous() if D is not None else u.new_zeros(channels, dtype=f32),
            z.to(f32).contiguous() if z is not None else u.new_zeros(1, 1, 1, dtype=f32),
            delta_bias.to(f32).contiguous() if delta_bias is not None else u.new_zeros(channels, dtype=f32),
        )
        out = torch.empty(u.shape, dtype=f32)
        last_state = torch.empty(u.shape[0], channels, A.shape[1], dtype=f32)
        forward_kernel(*(t.numpy() for t in inputs), delta_softplus, z is not None, out.numpy(), last_state.numpy())
        ctx.save_for_backward(*inputs)
        ctx.flags = (delta_softplus, z is not None, D is not None, delta_bias is not None, B.dim(), C.dim())
        ctx.mark_non_differentiable(last_state)
        return out.to(u.dtype), last_state

    @staticmethod
    def backward(ctx: Any, dout: Tensor, _dlast: Tensor | None) -> tuple[Tensor | None, ...]:
        inputs = ctx.saved_tensors
        u, A, B = inputs[0], inputs[2], inputs[3]
        delta_softplus, has_z, has_D, has_bias, B_dim, C_dim = ctx.flags
        _, backward_kernel = _kernels(A.shape[1])
        batch, channels, _ = u.shape
        groups = B.shape[1]
        slices = max(1, min(channels // groups, -(-2 * torch.get_num_threads() // (batch * groups))))
        f32 = torch.float32
        du, ddelta = torch.empty_like(u), torch.empty_like(u)
        dz = torch.empty_like(u) if has_z else u.new_zeros(1, 1, 1)
        dA = torch.empty(batch, *A.shape, dtype=f32)
        dB_parts = torch.zeros(slices, *B.shape, dtype=f32)
        dC_parts = torch.zeros(slices, *B.shape, dtype=f32)
        dD, dbias = torch.empty(batch, channels, dtype=f32), torch.empty(batch, channels, dtype=f32)
        backward_kernel(
            *(t.numpy() for t in inputs),
            delta_softplus,
            has_z,
            dout.to(f32).contiguous().numpy(),
            slices,
            *(t.numpy() for t in (du, ddelta, dA, dB_parts, dC_parts, dD, dz, dbias)),
        )
        dB, dC = (parts.sum(0).transpose(-1, -2) for parts in (dB_parts, dC_parts))
        return (
            du,
            ddelta,
            dA.sum(0),
            dB.squeeze(1) if B_dim == 3 else dB,
            dC.squeeze(1) if C_dim == 3 else dC,
            dD.sum(0) if has_D else None,
            dz if has_z else None,
            dbias.sum(0) if has_bias else None,
            None,
        )
