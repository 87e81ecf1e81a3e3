"""The "mamba" scan backend: mamba-ssm's compiled CUDA kernel, the top-level module `selective_scan_cuda`.

The kernel is imported lazily and on its own: importing the `mamba_ssm` package can fail for unrelated reasons (its
`__init__` imports Mamba2/Mamba3 and their Triton code), and on a CPU-only install the kernel module is missing.
"""

from __future__ import annotations

import functools
import importlib
import logging
from types import ModuleType
from typing import Any

import torch
from torch import Tensor

from cmt_geo.ops._scan_common import as_grouped

logger = logging.getLogger(__name__)


@functools.cache
def _kernel_module() -> ModuleType | None:
    try:
        return importlib.import_module("selective_scan_cuda")
    except ImportError as exc:  # absent, or built against another torch
        logger.debug("mamba-ssm's selective_scan_cuda kernel is unavailable: %s", exc)
        return None


def kernel_available() -> bool:
    """True when CUDA is usable and mamba-ssm's kernel imports."""
    return torch.cuda.is_available() and _kernel_module() is not None


class SelectiveScanMamba(torch.autograd.Function):
    """`selective_scan` on CUDA tensors with mamba-ssm's kernel; returns (out, last state)."""

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
        kernel = _kernel_module()
        assert kernel is not None  # resolve_backend checked it
        squeeze_B, squeeze_C = B.dim() == 3, C.dim() == 3
        u, delta = u.contiguous(), delta.contiguous()
        z = z.contiguous() if z is not None else None
        B, C = as_grouped(B, u.dtype).contiguous(), as_grouped(C, u.dtype).contiguous()
        A = A.float().contiguous()
        D = D.float().contiguous() if D is not None else None
        delta_bias = delta_bias.float().contiguous() if delta_bias is not None else None
        out, scan_states, *rest = kernel.fwd(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
        ctx.delta_softplus = delta_softplus
        ctx.squeeze = (squeeze_B, squeeze_C)
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, scan_states, out)
        last_state = scan_states[:, :, -1, 1::2]
        ctx.mark_non_differentiable(last_state)
        return (rest[0] if z is not None else out), last_state

    @staticmethod
    def backward(ctx: Any, dout: Tensor, _dlast: Tensor | None) -> tuple[Tensor | None, ...]:
        kernel = _kernel_module()
        assert kernel is not None
        u, delta, A, B, C, D, z, delta_bias, scan_states, out = ctx.saved_tensors
        dout = dout.contiguous()
        du, ddelta, dA, dB, dC, dD, ddelta_bias, *rest = kernel.bwd(
            u, delta, A, B, C, D, z, delta_bias, dout, scan_states, out, None, ctx.delta_softplus, False
        )
        squeeze_B, squeeze_C = ctx.squeeze
        return (
            du,
            ddelta,
            dA,
            dB.squeeze(1) if squeeze_B else dB,
            dC.squeeze(1) if squeeze_C else dC,
            dD if D is not None else None,
            rest[0] if z is not None else None,
            ddelta_bias if delta_bias is not None else None,
            None,
        )
