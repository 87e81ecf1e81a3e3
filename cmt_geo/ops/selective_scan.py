"""The selective scan of Mamba: a sequential reference and a dispatcher over fast backends.

    h_t = exp(Δ_t·A)·h_{t-1} + Δ_t·B_t·u_t,   y_t = C_t·h_t + D·u_t,   out = y·SiLU(z),   Δ = softplus(delta + bias)

Shapes follow mamba-ssm: u, delta, z (batch, channels, length); A (channels, d_state); B, C (batch, groups, d_state,
length) or (batch, d_state, length); D, delta_bias (channels,). The state is kept in fp32 (fp64 for fp64 inputs);
the output has the dtype of `u`.

Backends (see `available_backends`): "mamba" (mamba-ssm's CUDA kernel), "cpu" (a compiled sequential scan, numba;
computes in fp32), "torch" (chunked parallel scan in plain torch: CPU, CUDA, MPS) and "ref" (the sequential oracle).
"auto" picks the fastest one that can run on the inputs' device (fp64 inputs: "torch"); the environment variable
CMTGEO_SCAN_BACKEND overrides "auto".
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Literal, overload

import torch
from torch import Tensor

from cmt_geo.errors import BackendUnavailableError, ConfigError
from cmt_geo.ops._scan_common import apply_skip_and_gate, as_grouped, prepare_delta, state_dtype

ScanBackend = Literal["auto", "mamba", "cpu", "torch", "ref"]
BACKENDS: tuple[str, ...] = ("mamba", "cpu", "torch", "ref")
BACKEND_ENV_VAR = "CMTGEO_SCAN_BACKEND"

ScanResult = Tensor | tuple[Tensor, Tensor]


def check_scan_inputs(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None,
    z: Tensor | None,
    delta_bias: Tensor | None,
) -> None:
    """Raise `ConfigError` naming the first argument whose shape does not fit the others."""
    if u.dim() != 3 or A.dim() != 2:
        raise ConfigError(
            f"u must be (batch, channels, length) and A (channels, d_state), got {tuple(u.shape)} and {tuple(A.shape)}"
        )
    batch, channels, length = u.shape
    expected = {"delta": (delta, (batch, channels, length)), "A": (A, (channels, A.shape[-1]))}
    if z is not None:
        expected["z"] = (z, (batch, channels, length))
    if D is not None:
        expected["D"] = (D, (channels,))
    if delta_bias is not None:
        expected["delta_bias"] = (delta_bias, (channels,))
    for name, (tensor, shape) in expected.items():
        if tuple(tensor.shape) != shape:
            raise ConfigError(f"{name} must have shape {shape} to match u {tuple(u.shape)}, got {tuple(tensor.shape)}")
    d_state = A.shape[-1]
    for name, tensor in (("B", B), ("C", C)):
        groups = tensor.shape[1] if tensor.dim() == 4 else 1
        shape = (batch, groups, d_state, length) if tensor.dim() == 4 else (batch, d_state, length)
        if tensor.dim() not in (3, 4) or tuple(tensor.shape) != shape or channels % groups:
            raise ConfigError(
                f"{name} must be (batch, groups, d_state, length) with groups dividing {channels} channels, "
                f"or (batch, d_state, length); got {tuple(tensor.shape)} for u {tuple(u.shape)} and d_state {d_state}"
            )
    if B.shape != C.shape:
        raise ConfigError(f"B and C must have the same shape (same groups), got {tuple(B.shape)} and {tuple(C.shape)}")


def selective_scan_ref(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
) -> ScanResult:
    """The plain sequential selective scan: one step per position, obviously correct and slow.

    Returns:
        out (B, D, L) in u's dtype, and with `return_last_state` also the final state (B, D, N).
    """
    check_scan_inputs(u, delta, A, B, C, D, z, delta_bias)
    out, last_state = _scan_ref(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    return (out, last_state) if return_last_state else out


def _scan_ref(
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
    """`selective_scan_ref` returning (out, last state)."""
    dtype = state_dtype(u)
    batch, channels, length = u.shape
    uf = u.to(dtype)
    dt = prepare_delta(delta, delta_bias, delta_softplus, dtype)
    # Time first, channels in groups: (L, B, G, H, N), each group's B_t and C_t shared by its H channels.
    Bg, Cg = as_grouped(B, dtype), as_grouped(C, dtype)
    groups = Bg.shape[1]
    A = A.to(dtype).reshape(groups, channels // groups, -1)
    dt = dt.reshape(batch, groups, -1, length).permute(3, 0, 1, 2)
    uf_t = uf.reshape(batch, groups, -1, length).permute(3, 0, 1, 2)
    decays = torch.exp(dt.unsqueeze(-1) * A).contiguous()
    drives = ((dt * uf_t).unsqueeze(-1) * Bg.permute(3, 0, 1, 2).unsqueeze(3)).contiguous()
    Cs = Cg.permute(3, 0, 1, 2).unsqueeze(3).contiguous()
    h = uf.new_zeros(batch, groups, channels // groups, A.shape[-1])
    ys = []
    # Per-step slices come from unbind (views whose backward is one stack), never from indexing in the loop.
    for decay, drive, C_t in zip(decays.unbind(0), drives.unbind(0), Cs.unbind(0), strict=True):
        h = decay * h + drive
        ys.append((h * C_t).sum(-1).reshape(batch, channels))
    y = torch.stack(ys, dim=-1)
    out = apply_skip_and_gate(y, uf, D, z)
    return out.to(u.dtype), h.reshape(batch, channels, -1)


def _mamba_available() -> bool:
    from cmt_geo.ops import _scan_mamba

    return _scan_mamba.kernel_available()


def _cpu_available() -> bool:
    from cmt_geo.ops import _scan_cpu

    return _scan_cpu.numba_available()


def available_backends(device: torch.device | str = "cpu") -> list[str]:
    """The backends that can run on tensors on `device`, fastest first."""
    device = torch.device(device)
    found = []
    if device.type == "cuda" and _mamba_available():
        found.append("mamba")
    if device.type == "cpu" and _cpu_available():
        found.append("cpu")
    return [*found, "torch", "ref"]


def _auto_backend(device: torch.device, dtype: torch.dtype) -> str:
    """The fastest backend for `device`; fp64 inputs go to "torch", the fastest one that keeps fp64."""
    if dtype == torch.float64:
        return "torch"
    return available_backends(device)[0]


_INSTALL_HINTS = {
    "mamba": "install mamba-ssm's kernel on a CUDA machine (pip install --no-build-isolation 'cmt-geo[cuda]')",
    "cpu": "install numba (pip install numba)",
}


def resolve_backend(backend: str, device: torch.device, dtype: torch.dtype = torch.float32) -> str:
    """The backend to run inputs of `dtype` on `device`: `backend` itself when it can run there, or for "auto" the
    best one (`CMTGEO_SCAN_BACKEND` overrides "auto").

    Raises:
        ConfigError: the name is not a backend.
        BackendUnavailableError: the backend cannot run on `device` here.
    """
    if backend == "auto":
        backend = os.environ.get(BACKEND_ENV_VAR, "auto").strip().lower() or "auto"
        if backend == "auto":
            return _auto_backend(device, dtype)
    if backend not in BACKENDS:
        raise ConfigError(f"unknown scan backend {backend!r}; use one of auto, {', '.join(BACKENDS)}")
    if backend not in available_backends(device):
        needs = {"mamba": "CUDA tensors", "cpu": "CPU tensors"}[backend]
        raise BackendUnavailableError(
            f"scan backend {backend!r} cannot run on {device} here: it needs {needs} and "
            f"{'the compiled kernel' if backend == 'mamba' else 'numba'}; {_INSTALL_HINTS[backend]}, "
            f"or use backend='auto' (available on {device}: {', '.join(available_backends(device))})"
        )
    return backend


def _implementation(name: str) -> Callable[..., tuple[Tensor, Tensor]]:
    """The backend's function of (u, delta, A, B, C, D, z, delta_bias, delta_softplus) → (out, last state)."""
    if name == "mamba":
        from cmt_geo.ops._scan_mamba import SelectiveScanMamba

        return SelectiveScanMamba.apply
    if name == "cpu":
        from cmt_geo.ops._scan_cpu import selective_scan_cpu

        return selective_scan_cpu
    if name == "torch":
        from cmt_geo.ops._scan_torch import selective_scan_torch

        return selective_scan_torch
    return _scan_ref


@overload
def selective_scan(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: Literal[False] = False,
    backend: ScanBackend | str = "auto",
) -> Tensor: ...
@overload
def selective_scan(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    *,
    return_last_state: Literal[True],
    backend: ScanBackend | str = "auto",
) -> tuple[Tensor, Tensor]: ...
def selective_scan(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
    backend: ScanBackend | str = "auto",
) -> ScanResult:
    """The selective scan on the fastest backend that runs here, or on the one `backend` names.

    Same arguments and results as `selective_scan_ref`; differentiable in every tensor argument. The final state
    returned with `return_last_state` carries no gradient.

    Raises:
        ConfigError: an unknown backend name or mismatched shapes.
        BackendUnavailableError: the forced backend cannot run here (the message says what to install).
    """
    check_scan_inputs(u, delta, A, B, C, D, z, delta_bias)
    name = resolve_backend(backend, u.device, u.dtype)
    out, last_state = _implementation(name)(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    return (out, last_state) if return_last_state else out
