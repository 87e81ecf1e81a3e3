"""The "torch" scan backend: a chunked parallel scan in plain torch that runs on any device.

The sequence is cut into chunks of T steps. Inside a chunk, the pairs (a_t, b_t) = (exp(Δ_t·A), Δ_t·B_t·u_t) are
combined by a Hillis-Steele inclusive scan over the associative operator (a, b) ∘ (a', b') = (a·a', a'·b + b'), in
log2(T) vectorized steps; the state entering the chunk is then added as A_cum·h. Only products of decays in [0, 1] are
formed, never exp of a cumulative sum and its inverse, so the result is stable for any Δ ≥ 0 and A ≤ 0 (the chunked
"easy" scan returns NaN once Δ·A grows). Memory is bounded by one chunk's (B, D, T, N) tensors: T is chosen from a
per-device budget of elements, and under autograd each chunk is checkpointed (recomputed in the backward pass).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from cmt_geo.ops._scan_common import apply_skip_and_gate, as_grouped, prepare_delta, state_dtype

CHUNK_ELEMENTS = {"cpu": 1 << 18, "other": 1 << 24}
"""Elements in one chunk's (B, D, T, N) tensors: cache-sized on CPU, large on GPUs to launch fewer kernels."""


def chunk_length(batch: int, channels: int, d_state: int, length: int, budget: int) -> int:
    """The chunk length T: a power of two between 1 and 256 (and at most the sequence) within the element budget."""
    fits = max(1, budget // max(1, batch * channels * d_state))
    chunk = 1 << min(fits.bit_length() - 1, 8)
    return max(1, min(chunk, 1 << (length - 1).bit_length()))


def _scan_chunk(dt: Tensor, u: Tensor, A: Tensor, B: Tensor, C: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
    """One chunk. dt, u (B, G, H, T); A (G, H, N); B, C (B, G, N, T); h (B, G, H, N) entering state.

    Returns:
        y (B, G, H, T) and the state after the chunk (B, G, H, N).
    """
    decay = torch.exp(dt.unsqueeze(-1) * A.unsqueeze(2))  # (B, G, H, T, N)
    state = (dt * u).unsqueeze(-1) * B.transpose(-1, -2).unsqueeze(2)  # (B, G, H, T, N)
    steps = decay.shape[-2]
    offset = 1
    while offset < steps:
        state = torch.cat(
            [
                state[..., :offset, :],
                torch.addcmul(state[..., offset:, :], decay[..., offset:, :], state[..., :-offset, :]),
            ],
            dim=-2,
        )
        decay = torch.cat([decay[..., :offset, :], decay[..., offset:, :] * decay[..., :-offset, :]], dim=-2)
        offset *= 2
    state = torch.addcmul(state, decay, h.unsqueeze(-2))
    y = torch.einsum("bghtn,bgnt->bght", state, C)
    return y, state[..., -1, :]


def selective_scan_torch(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
) -> tuple[Tensor, Tensor]:
    """`selective_scan` with the chunked parallel scan, state in fp32 (fp64 for fp64 inputs); returns (out, last
    state), the state without gradient."""
    dtype = state_dtype(u)
    batch, channels, length = u.shape
    Bg, Cg = as_grouped(B, dtype), as_grouped(C, dtype)
    groups = Bg.shape[1]
    uf = u.to(dtype)
    dt = prepare_delta(delta, delta_bias, delta_softplus, dtype).reshape(batch, groups, -1, length)
    ug = uf.reshape(batch, groups, -1, length)
    Ag = A.to(dtype).reshape(groups, channels // groups, -1)
    h = uf.new_zeros(batch, groups, channels // groups, A.shape[-1])
    budget = CHUNK_ELEMENTS["cpu" if u.device.type == "cpu" else "other"]
    chunk = chunk_length(batch, channels, A.shape[-1], length, budget)
    recompute = torch.is_grad_enabled() and any(
        x is not None and x.requires_grad for x in (u, delta, A, B, C, delta_bias)
    )
    ys = []
    for start in range(0, length, chunk):
        window = slice(start, start + chunk)
        args = (dt[..., window], ug[..., window], Ag, Bg[..., window], Cg[..., window], h)
        if recompute:
            y, h = checkpoint(_scan_chunk, *args, use_reentrant=False)
        else:
            y, h = _scan_chunk(*args)
        ys.append(y)
    y = torch.cat(ys, dim=-1).reshape(batch, channels, length)
    out = apply_skip_and_gate(y, uf, D, z).to(u.dtype)
    return out, h.reshape(batch, channels, -1).detach()
