"""Helpers shared by the selective-scan reference and its backends: layouts, Δ, the D skip and the z gate.

They live apart from `selective_scan`, which imports the backends, so that no backend imports its dispatcher.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def as_grouped(x: Tensor, dtype: torch.dtype) -> Tensor:
    """B or C as (B, G, N, L) in `dtype`: (B, N, L) is one group shared by all channels."""
    return (x.unsqueeze(1) if x.dim() == 3 else x).to(dtype)


def prepare_delta(delta: Tensor, delta_bias: Tensor | None, delta_softplus: bool, dtype: torch.dtype) -> Tensor:
    """Δ in `dtype`: delta + bias, through softplus when asked."""
    delta = delta.to(dtype)
    if delta_bias is not None:
        delta = delta + delta_bias.to(dtype)[:, None]
    return F.softplus(delta) if delta_softplus else delta


def state_dtype(x: Tensor) -> torch.dtype:
    """The dtype the scan state is kept in: fp64 for fp64 inputs, else fp32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def apply_skip_and_gate(y: Tensor, u: Tensor, D: Tensor | None, z: Tensor | None) -> Tensor:
    """y + D·u, times SiLU(z) when z is given, computed in y's dtype."""
    if D is not None:
        y = y + u * D.to(y.dtype)[:, None]
    if z is not None:
        y = y * F.silu(z.to(y.dtype))
    return y
