"""numba kernels of the "cpu" scan backend (imported only when that backend first runs).

Every elementwise function here (exp, softplus, sigmoid) is a branch-free polynomial so that loops over the d_state
states, or over time in the per-channel passes, compile to SIMD code: numba would otherwise call libm once per value.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

f32 = np.float32
_LOG2E, _LN2_HI, _LN2_LO = f32(1.4426950408889634), f32(0.693359375), f32(-2.12194440e-4)
_EXP_POLY = tuple(f32(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 0.16666665459))
_EXP_MIN, _EXP_MAX = f32(-87.33654), f32(88.37626)

_jit = numba.njit(fastmath=True, cache=True, nogil=True, error_model="numpy")
_jit_parallel = numba.njit(fastmath=True, cache=True, nogil=True, parallel=True, error_model="numpy")


@intrinsic
def _int32_bits_as_float32(typingctx: Any, bits: Any) -> Any:
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@_jit
def fast_exp(x):
    """exp(x) in fp32 within 2 ulp: Cody-Waite reduction to r ∈ [-ln2/2, ln2/2], degree-6 polynomial, times 2^k."""
    x = min(max(x, _EXP_MIN), _EXP_MAX)
    k = math.floor(x * _LOG2E + f32(0.5))
    r = x - k * _LN2_HI - k * _LN2_LO
    c0, c1, c2, c3, c4 = _EXP_POLY
    p = (((((c0 * r + c1) * r + c2) * r + c3) * r + c4) * r + f32(0.5)) * r * r + r + f32(1.0)
    return p * _int32_bits_as_float32(np.int32((np.int32(k) + np.int32(127)) << np.int32(23)))


@_jit
def fast_softplus(x):
    """log(1 + exp(x)) = max(x, 0) + log1p(e), e = exp(-|x|) ∈ (0, 1], log1p(e) = 2·atanh(e / (2 + e))."""
    e = fast_exp(-abs(x))
    s = e / (f32(2.0) + e)  # s ∈ (0, 1/3]: the odd series converges by a factor 1/9 per term
    s2 = s * s
    series = f32(1.0) + s2 * (
        f32(1 / 3) + s2 * (f32(1 / 5) + s2 * (f32(1 / 7) + s2 * (f32(1 / 9) + s2 * (f32(1 / 11) + s2 * f32(1 / 13)))))
    )
    return max(x, f32(0.0)) + f32(2.0) * s * series


@_jit
def fast_sigmoid(x):
    return f32(1.0) / (f32(1.0) + fast_exp(-x))


@_jit
def step_sizes(delta_row, bias, use_softplus, dts, slopes):
    """Δ_t = softplus(delta_t + bias) (or the sum itself) into dts, and dΔ/d(delta) into slopes."""
    for t in range(delta_row.shape[0]):
        raw = delta_row[t] + bias
        dts[t] = fast_softplus(raw) if use_softplus else raw
        slopes[t] = fast_sigmoid(raw) if use_softplus else f32(1.0)


def make_kernels(n_state: int) -> tuple[Any, Any]:
    """The forward and backward kernels with `n_state` (d_state) a compile-time constant, for full vectorization.

    The kernels close over nothing but `n_state`, so numba's on-disk cache can key them by its value.

    Arrays are C-contiguous fp32: u, delta, z (B, D, L); A (D, N); B, C (B, G, L, N) time-major; D, bias (D,).
    """

    @_jit_parallel
    def forward(u, delta, A, B, C, D, z, bias, use_softplus, has_z, out, last_state):
        batch, channels, length = u.shape
        per_group = channels // B.shape[1]
        for item in numba.prange(batch * channels):
            b, d = item // channels, item % channels
            Bg, Cg, Ad, u_row, out_row = B[b, d // per_group], C[b, d // per_group], A[d], u[b, d], out[b, d]
            dts = np.empty(length, dtype=np.float32)
            slopes = np.empty(length, dtype=np.float32)
            step_sizes(delta[b, d], bias[d], use_softplus, dts, slopes)
            h = np.zeros(n_state, dtype=np.float32)
            for t in range(length):
                dt = dts[t]
                drive = dt * u_row[t]
                y = D[d] * u_row[t]
                for n in range(n_state):
                    h[n] = fast_exp(dt * Ad[n]) * h[n] + drive * Bg[t, n]
                    y += h[n] * Cg[t, n]
                out_row[t] = y
            if has_z:
                z_row = z[b, d]
                for t in range(length):
                    out_row[t] *= z_row[t] * fast_sigmoid(z_row[t])
            last_state[b, d, :] = h

    @_jit_parallel
    def backward(
        u,
        delta,
        A,
        B,
        C,
        D,
        z,
        bias,
        use_softplus,
        has_z,
        dout,
        slices,
        du,
        ddelta,
        dA,
        dB_parts,
        dC_parts,
        dD,
        dz,
        dbias,
    ):
        """Gradients; dA, dD, dbias per batch row (B, D, ...) and dB, dC per channel slice (S, B, G, L, N), summed by
        the caller. Channels of a group are split in `slices` work items so that every thread has work."""
        batch, channels, length = u.shape
        groups = B.shape[1]
        per_group = channels // groups
        per_slice = (per_group + slices - 1) // slices
        for item in numba.prange(batch * groups * slices):
            b, g, s = item // (groups * slices), (item // slices) % groups, item % slices
            Bg, Cg, dBp, dCp = B[b, g], C[b, g], dB_parts[s, b, g], dC_parts[s, b, g]
            states = np.zeros((length + 1, n_state), dtype=np.float32)  # row t + 1 holds h_t; row 0 is h_-1 = 0
            dts = np.empty(length, dtype=np.float32)
            slopes = np.empty(length, dtype=np.float32)
            gates = np.ones(length, dtype=np.float32)
            gate_slopes = np.zeros(length, dtype=np.float32)
            dh = np.empty(n_state, dtype=np.float32)
            decays = np.empty((length, n_state), dtype=np.float32)
            dAd = np.empty(n_state, dtype=np.float32)
            first = g * per_group + s * per_slice
            for d in range(first, min(first + per_slice, (g + 1) * per_group)):
                Ad, u_row, dout_row = A[d], u[b, d], dout[b, d]
                step_sizes(delta[b, d], bias[d], use_softplus, dts, slopes)
                if has_z:
                    z_row = z[b, d]
                    for t in range(length):
                        sig = fast_sigmoid(z_row[t])
                        gates[t] = z_row[t] * sig
                        gate_slopes[t] = sig * (f32(1.0) + z_row[t] * (f32(1.0) - sig))
                for t in range(length):
                    dt = dts[t]
                    drive = dt * u_row[t]
                    for n in range(n_state):
                        a = fast_exp(dt * Ad[n])
                        decays[t, n] = a
                        states[t + 1, n] = a * states[t, n] + drive * Bg[t, n]
                dh[:] = f32(0.0)
                dAd[:] = f32(0.0)
                dD_d = f32(0.0)
                for t in range(length - 1, -1, -1):
                    dt, u_t = dts[t], u_row[t]
                    dy = dout_row[t] * gates[t]
                    if has_z:
                        y = D[d] * u_t
                        for n in range(n_state):
                            y += states[t + 1, n] * Cg[t, n]
                        dz[b, d, t] = dout_row[t] * y * gate_slopes[t]
                    dD_d += dy * u_t
                    du_t = dy * D[d]
                    ddt = f32(0.0)
                    for n in range(n_state):
                        dh_n = dh[n] + dy * Cg[t, n]
                        dCp[t, n] += dy * states[t + 1, n]
                        a = decays[t, n]
                        dh_a = dh_n * a * states[t, n]
                        ddt += dh_a * Ad[n] + dh_n * Bg[t, n] * u_t
                        dAd[n] += dh_a * dt
                        dBp[t, n] += dh_n * dt * u_t
                        du_t += dh_n * dt * Bg[t, n]
                        dh[n] = dh_n * a
                    du[b, d, t] = du_t
                    dts[t] = ddt * slopes[t]  # dts[t] is not needed again: reuse it for d(loss)/d(delta_t)
                ddelta[b, d, :] = dts
                dbias[b, d] = dts.sum()
                dA[b, d, :] = dAd
                dD[b, d] = dD_d

    return forward, backward
