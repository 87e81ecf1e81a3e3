"""numba kernels of the "cpu" scan backend (imported only when that backend first runs).

Layout, chosen so that LLVM vectorizes the state loops on every target (AVX-512, AVX2, SSE2, NEON): B and C are
time-major (B, G, L, N), so the N states of one step are contiguous, and every loop over states reads and writes
contiguous rows of fp32. Work is cut in time blocks of `TIME_BLOCK` steps; a work item is a slice of the channels of
one (batch, group) and walks its channels block by block, so the block's B and C rows (and in the backward its dB
and dC rows) stay in L1 for all of them. The backward recomputes the states of a block from a checkpoint stored every
block, so its memory is O(L/TIME_BLOCK·N) per channel whatever the length.

Every elementwise function here (exp, softplus, sigmoid) is a branch-free polynomial in fp32 and int32 only: an fp64
or int64 step would halve the vector width, and float↔int64 conversions have no vector instruction before
AVX-512DQ, so on AVX2 they run one lane at a time.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import numba
import numpy as np
from llvmlite import ir
from numba import literally, types
from numba.extending import intrinsic

from cmt_geo.ops._numba import prefer_openmp_thread_pool

prefer_openmp_thread_pool()

f32 = np.float32
_LOG2E, _LN2_HI, _LN2_LO = f32(1.4426950408889634), f32(0.693359375), f32(-2.12194440e-4)
_EXP_POLY = tuple(f32(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 0.16666665459))
_EXP_MIN, _EXP_MAX = f32(-87.33654), f32(88.37626)

TIME_BLOCK = 64
"""Steps per time block: a block's state, decay and gradient rows (3·64·16 fp32) and its B, C rows fit in L1."""

_OPTIONS: dict[str, Any] = {"fastmath": True, "nogil": True, "error_model": "numpy", "boundscheck": False}
_jit = numba.njit(cache=True, **_OPTIONS)


@intrinsic
def _pow2(typingctx: Any, k: Any) -> Any:
    """2**k for an integral fp32 k in [-126, 127], built from its exponent bits in int32 (vectorizes everywhere)."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        i32 = ir.IntType(32)
        bits = builder.shl(builder.add(builder.fptosi(args[0], i32), ir.Constant(i32, 127)), ir.Constant(i32, 23))
        return builder.bitcast(bits, ir.FloatType())

    return types.float32(types.float32), codegen


@_jit
def fast_exp(x):
    """exp(x) in fp32 within 2 ulp: Cody-Waite reduction to r ∈ [-ln2/2, ln2/2], degree-6 polynomial, times 2^k."""
    x = min(max(x, _EXP_MIN), _EXP_MAX)
    k = f32(np.int32(x * _LOG2E + f32(128.5))) - f32(128.0)  # floor(x·log2e + 1/2): truncating a positive value
    r = x - k * _LN2_HI - k * _LN2_LO
    c0, c1, c2, c3, c4 = _EXP_POLY
    p = (((((c0 * r + c1) * r + c2) * r + c3) * r + c4) * r + f32(0.5)) * r * r + r + f32(1.0)
    return p * _pow2(k)


_ROUNDING_SHIFT = 12582912.0
"""1.5·2^23: for |x| < 2^22 the fp32 sum x + 1.5·2^23 is round(x) + 1.5·2^23, round(x) in its low mantissa bits."""
_EXP2_POLY = tuple(f32(c) for c in (1.3268215e-3, 9.6715111e-3, 5.5507217e-2, 0.24022242, 0.69314700))
_EXP2_MIN, _EXP2_MAX = f32(-125.0), f32(127.0)


@intrinsic
def _unshifted(typingctx: Any, shifted: Any) -> Any:
    """round(x) as fp32 from shifted = x + `_ROUNDING_SHIFT`: the shifted bits less those of the shift, in int32.
    (shifted - shift in fp32 is the textbook way, but under fast-math LLVM folds (x + s) - s back into x.)"""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        i32 = ir.IntType(32)
        shift_bits = int(np.array(_ROUNDING_SHIFT, np.float32).view(np.int32))
        return builder.sitofp(builder.sub(builder.bitcast(args[0], i32), ir.Constant(i32, shift_bits)), ir.FloatType())

    return types.float32(types.float32), codegen


@intrinsic
def _times_pow2(typingctx: Any, p: Any, shifted: Any) -> Any:
    """p·2**round(x) from shifted = x + `_ROUNDING_SHIFT`: round(x) added to p's exponent bits (the shifted bits
    << 23 are round(x) << 23 in int32 arithmetic); the product must be a normal float."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        i32 = ir.IntType(32)
        exponent = builder.shl(builder.bitcast(args[1], i32), ir.Constant(i32, 23))
        return builder.bitcast(builder.add(builder.bitcast(args[0], i32), exponent), ir.FloatType())

    return types.float32(types.float32, types.float32), codegen


@_jit
def fast_exp2(x):
    """2**x in fp32, relative error below 2**-22 for x in [-125, 127] (clamped there): 2**round(x) times a degree-5
    minimax polynomial of 2**r, r = x - round(x) ∈ [-1/2, 1/2]. Fewer operations than `fast_exp` (no Cody-Waite
    split, no float→int conversion, the exponent added in int32): the scan's decays are 2**(Δ·log2(e)·A), as in
    mamba-ssm's CUDA kernel."""
    x = min(max(x, _EXP2_MIN), _EXP2_MAX)
    shifted = x + f32(_ROUNDING_SHIFT)
    r = x - _unshifted(shifted)
    c5, c4, c3, c2, c1 = _EXP2_POLY
    return _times_pow2(((((c5 * r + c4) * r + c3) * r + c2) * r + c1) * r + f32(1.0), shifted)


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
def step_sizes(delta_row, bias, use_softplus, dts):
    """Δ_t = softplus(delta_t + bias), or the sum itself, for the steps of `delta_row` into dts."""
    for t in range(delta_row.shape[0]):
        raw = delta_row[t] + bias
        dts[t] = fast_softplus(raw) if use_softplus else raw


@_jit
def step_slopes(delta_row, bias, use_softplus, slopes):
    """dΔ_t/d(delta_t): sigmoid(delta_t + bias) through softplus, else 1."""
    for t in range(delta_row.shape[0]):
        slopes[t] = fast_sigmoid(delta_row[t] + bias) if use_softplus else f32(1.0)


@_jit
def gate(z_row, out_row):
    """out ·= SiLU(z), in place."""
    for t in range(z_row.shape[0]):
        out_row[t] *= z_row[t] * fast_sigmoid(z_row[t])


class _Scratch(NamedTuple):
    """Offsets into a work item's flat fp32 scratch for N states: the block's rows of B, C, dB, dC, the decays
    a = exp(Δ_t·A) and a·A (T, N each), the states h_{t0-1}..h_{t1-1}, the gradients carried back to each state and
    the running sums of dA (T + 1, N each), the channel's A row and its state (N each); `size` is its length. The
    backward's state loop touches rows t and t + 1 only (a row it read at every t, like A's, would cost it its
    vectorization).

    Every loop over states reads and writes this one scratch at compile-time constant offsets plus `t·N + n`: LLVM
    then sees constant distances between the rows a loop touches and vectorizes it without runtime alias checks.
    (numba passes arrays as plain pointers and leaves LLVM's SLP vectorizer off, so a state loop over separate arrays
    is guarded by pairwise overlap checks at every step, or not vectorized at all.) The time loops are bounded by
    TIME_BLOCK for the same reason: it proves the indices non-negative, which removes numba's negative-index
    wraparound from the state loops.

    N (d_state) is a literal argument of the per-block functions (`numba.literally`) and a constant of the parallel
    kernels (`make_kernels` closes over N and these offsets only), so each N compiles once to code with constant
    offsets and fully vectorized state loops, and numba's on-disk cache keys the kernels by its value (and, like
    every cached function, by the target CPU name and features). Closures over the per-block functions would
    compile the same code, but numba cannot key closures over other compiled functions stably, so every new process
    compiled them again (about 8 s).

    Arrays are C-contiguous fp32: u, delta, z (B, D, L); A (D, N); B, C (B, G, L, N) time-major; D, bias (D,)
    (`both_ways_forward`: channels last instead, see there).
    """

    b_rows: int
    c_rows: int
    db_rows: int
    dc_rows: int
    decays: int
    scaled_decays: int
    states: int
    carries: int
    da_sums: int
    a_row: int
    state: int
    size: int


@numba.njit(inline="always")
def _scratch(N):
    """The `_Scratch` offsets for N states (compile-time constants where N is a literal)."""
    rows = TIME_BLOCK * N
    return _Scratch(
        0,
        rows,
        2 * rows,
        3 * rows,
        4 * rows,
        5 * rows,
        6 * rows,
        7 * rows + N,
        8 * rows + 2 * N,
        9 * rows + 3 * N,
        9 * rows + 4 * N,
        9 * rows + 5 * N,
    )


@_jit
def load_rows(source, offset, w):
    """Copy a block's (T, N) rows into the scratch at `offset`."""
    flat = source.ravel()
    for i in range(flat.shape[0]):
        w[offset + i] = flat[i]


@_jit
def store_rows(w, offset, target):
    """Copy a block's (T, N) rows from the scratch at `offset` into `target`."""
    flat = target.ravel()
    for i in range(flat.shape[0]):
        flat[i] = w[offset + i]


@_jit
def scan_block(w, u_row, dts, D_d, out_row, N):
    """Advance the channel's state (at `state`) over a block; out_row gets y = C·h + D·u. u_row, dts (T,)."""
    literally(N)
    at = _scratch(N)
    for t in range(min(u_row.shape[0], TIME_BLOCK)):
        dt = dts[t]
        dt_log2e, drive = dt * _LOG2E, dt * u_row[t]
        y = f32(0.0)
        for n in range(N):
            h = fast_exp2(dt_log2e * w[at.a_row + n]) * w[at.state + n] + drive * w[at.b_rows + t * N + n]
            w[at.state + n] = h
            y += h * w[at.c_rows + t * N + n]
        out_row[t] = y + D_d * u_row[t]


@_jit
def recompute_block(w, u_row, dts, D_d, y, N):
    """The block's decays and states from the state before it (row 0 of `states`); y = C·h + D·u into y (T,)."""
    literally(N)
    at = _scratch(N)
    for t in range(min(u_row.shape[0], TIME_BLOCK)):
        dt = dts[t]
        dt_log2e, drive = dt * _LOG2E, dt * u_row[t]
        y_t = f32(0.0)
        for n in range(N):
            i = t * N + n
            A_n = w[at.a_row + n]
            a = fast_exp2(dt_log2e * A_n)
            h = a * w[at.states + i] + drive * w[at.b_rows + i]
            w[at.decays + i] = a
            w[at.scaled_decays + i] = a * A_n
            w[at.states + i + N] = h
            y_t += h * w[at.c_rows + i]
        y[t] = y_t + D_d * u_row[t]


@_jit
def backward_block(w, u_row, dts, slopes, dy, D_d, du_row, N):
    """Gradients of one channel over a block that `recompute_block` left in the scratch.

    Row `span` of `carries` holds d(loss)/dh of the block's last step from later steps, row 0 receives that of the
    step before the block; row `span` of `da_sums` holds the channel's dA so far, row 0 receives it with the block's
    part; dB and dC accumulate. dy (T,) = d(loss)/dy is overwritten with d(loss)/d(delta); du_row (T,) is written.
    Returns d(loss)/dD of the block."""
    literally(N)
    at = _scratch(N)
    dD_d = f32(0.0)
    span = min(u_row.shape[0], TIME_BLOCK)
    for step in range(span):
        t = max(span - 1 - step, 0)
        dt, u_t, dy_t = dts[t], u_row[t], dy[t]
        dD_d += dy_t * u_t
        through_decay = f32(0.0)  # Σ_n d(loss)/d(Δ·A_n) · A_n = Σ_n grad_n · h_{t-1,n} · a_n · A_n
        through_drive = f32(0.0)  # Σ_n d(loss)/dh_n · B_n
        for n in range(N):
            i = t * N + n  # only rows t and t + 1 of each region: constant distances
            grad = w[at.carries + i + N] + dy_t * w[at.c_rows + i]  # d(loss)/dh_t
            decay = w[at.decays + i]
            w[at.carries + i] = grad * decay
            w[at.dc_rows + i] += dy_t * w[at.states + i + N]
            w[at.db_rows + i] += grad * dt * u_t
            through_h = grad * w[at.states + i]
            w[at.da_sums + i] = w[at.da_sums + i + N] + through_h * decay * dt
            through_decay += through_h * w[at.scaled_decays + i]
            through_drive += grad * w[at.b_rows + i]
        du_row[t] = dy_t * D_d + dt * through_drive
        dy[t] = (through_decay + through_drive * u_t) * slopes[t]
    return dD_d


class Kernels(NamedTuple):
    """The parallel kernels for one state size (each compiled, or loaded, at its first call)."""

    forward: Any
    """The scan of (B, D, L) sequences (`selective_scan_cpu`)."""
    backward: Any
    """Its gradients (`selective_scan_cpu_backward`)."""
    both_ways_forward: Any
    """Two scans of (B, L, D) sequences, forward and backward in time, summed (`selective_scan_both_ways_cpu`)."""


def make_kernels(n_state: int) -> Kernels:
    """The parallel kernels for `n_state` states. They close over `n_state` and its `_Scratch`
    offsets only (numba types the int as a literal, so the per-block functions compile with constant offsets), which
    numba's on-disk cache keys them by; the functions they call are module globals."""
    jit_parallel = numba.njit(cache=True, parallel=True, **_OPTIONS)
    N = n_state
    at = _scratch.py_func(N)

    @jit_parallel
    def forward(u, delta, A, B, C, D, z, bias, use_softplus, has_z, slices, out, last_state):
        """out (B, D, L) and the last state (B, D, N); each (batch, group) is cut in `slices` work items."""
        batch, channels, length = u.shape
        groups = B.shape[1]
        per_group = channels // groups
        per_slice = (per_group + slices - 1) // slices
        for item in numba.prange(batch * groups * slices):
            b, g, s = item // (groups * slices), (item // slices) % groups, item % slices
            first = g * per_group + s * per_slice
            stop = min(first + per_slice, (g + 1) * per_group)
            w = np.zeros(at.size, dtype=np.float32)
            hs = np.zeros((max(stop - first, 0), N), dtype=np.float32)
            dts = np.empty(TIME_BLOCK, dtype=np.float32)
            for t0 in range(0, length, TIME_BLOCK):
                t1 = min(t0 + TIME_BLOCK, length)
                load_rows(B[b, g, t0:t1], at.b_rows, w)
                load_rows(C[b, g, t0:t1], at.c_rows, w)
                block_dts = dts[: t1 - t0]
                for d in range(first, stop):
                    step_sizes(delta[b, d, t0:t1], bias[d], use_softplus, block_dts)
                    w[at.a_row : at.a_row + N] = A[d]
                    w[at.state : at.state + N] = hs[d - first]
                    scan_block(w, u[b, d, t0:t1], block_dts, D[d], out[b, d, t0:t1], N)
                    hs[d - first] = w[at.state : at.state + N]
                    if has_z:
                        gate(z[b, d, t0:t1], out[b, d, t0:t1])
            for d in range(first, stop):
                last_state[b, d, :] = hs[d - first]

    @jit_parallel
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
        """Gradients; dA, dD, dbias per batch row (B, D, ...), dB and dC per channel slice (S, B, G, L, N), summed
        by the caller. The channels of a (batch, group) are cut in `slices` work items. Each item first finds the
        states at block starts, then walks the blocks backwards, recomputing each from its start."""
        batch, channels, length = u.shape
        groups = B.shape[1]
        per_group = channels // groups
        per_slice = (per_group + slices - 1) // slices
        blocks = (length + TIME_BLOCK - 1) // TIME_BLOCK
        for item in numba.prange(batch * groups * slices):
            b, g, s = item // (groups * slices), (item // slices) % groups, item % slices
            first = g * per_group + s * per_slice
            stop = min(first + per_slice, (g + 1) * per_group)
            count = max(stop - first, 0)
            w = np.zeros(at.size, dtype=np.float32)
            starts = np.zeros((count, blocks, N), dtype=np.float32)  # each channel's state before each block
            carried = np.zeros((count, N), dtype=np.float32)  # d(loss)/dh carried back to the current block
            dA_sums = np.zeros((count, N), dtype=np.float32)
            dD_sums = np.zeros(count, dtype=np.float32)
            dbias_sums = np.zeros(count, dtype=np.float32)
            dts = np.empty(TIME_BLOCK, dtype=np.float32)
            slopes = np.empty(TIME_BLOCK, dtype=np.float32)
            dy = np.empty(TIME_BLOCK, dtype=np.float32)
            y = np.empty(TIME_BLOCK, dtype=np.float32)
            for k in range(blocks - 1):
                t0, t1 = k * TIME_BLOCK, (k + 1) * TIME_BLOCK
                load_rows(B[b, g, t0:t1], at.b_rows, w)
                for d in range(first, stop):
                    step_sizes(delta[b, d, t0:t1], bias[d], use_softplus, dts)
                    w[at.a_row : at.a_row + N] = A[d]
                    w[at.state : at.state + N] = starts[d - first, k]
                    scan_block(w, u[b, d, t0:t1], dts, D[d], y, N)
                    starts[d - first, k + 1] = w[at.state : at.state + N]
            for k in range(blocks - 1, -1, -1):
                t0 = k * TIME_BLOCK
                t1 = min(t0 + TIME_BLOCK, length)
                span = t1 - t0
                load_rows(B[b, g, t0:t1], at.b_rows, w)
                load_rows(C[b, g, t0:t1], at.c_rows, w)
                w[at.db_rows : at.decays] = f32(0.0)
                block_dts, block_slopes, block_dy, block_y = dts[:span], slopes[:span], dy[:span], y[:span]
                last_carry, last_da = at.carries + span * N, at.da_sums + span * N
                for d in range(first, stop):
                    i = d - first
                    u_row, dout_row = u[b, d, t0:t1], dout[b, d, t0:t1]
                    step_sizes(delta[b, d, t0:t1], bias[d], use_softplus, block_dts)
                    step_slopes(delta[b, d, t0:t1], bias[d], use_softplus, block_slopes)
                    w[at.a_row : at.a_row + N] = A[d]
                    w[at.states : at.states + N] = starts[i, k]
                    recompute_block(w, u_row, block_dts, D[d], block_y, N)
                    if has_z:
                        z_row = z[b, d, t0:t1]
                        for t in range(span):
                            sig = fast_sigmoid(z_row[t])
                            block_dy[t] = dout_row[t] * z_row[t] * sig
                            dz[b, d, t0 + t] = dout_row[t] * block_y[t] * sig * (f32(1.0) + z_row[t] * (f32(1.0) - sig))
                    else:
                        block_dy[:] = dout_row
                    w[last_carry : last_carry + N] = carried[i]
                    w[last_da : last_da + N] = dA_sums[i]
                    dD_sums[i] += backward_block(w, u_row, block_dts, block_slopes, block_dy, D[d], du[b, d, t0:t1], N)
                    carried[i] = w[at.carries : at.carries + N]
                    dA_sums[i] = w[at.da_sums : at.da_sums + N]
                    ddelta[b, d, t0:t1] = block_dy
                    dbias_sums[i] += block_dy.sum()
                store_rows(w, at.db_rows, dB_parts[s, b, g, t0:t1])
                store_rows(w, at.dc_rows, dC_parts[s, b, g, t0:t1])
            for d in range(first, stop):
                dA[b, d, :] = dA_sums[d - first]
                dD[b, d] = dD_sums[d - first]
                dbias[b, d] = dbias_sums[d - first]

    @jit_parallel
    def both_ways_forward(u, delta, x_dbl, A, D, bias, per_item, out):
        """Two selective scans of each sequence, forward and backward in time, summed into out (B, L, Dm).

        u (B, L, Dm): the sequences, steps major, channels last. Direction k (0 forward, 1 backward) takes its Δ from
        delta (2, B, L, Dm) through softplus with `bias`, its B and C from the last 2N entries of
        x_dbl (B, L, 2, R + 2N); A (2·Dm, N), D and bias (2·Dm,) are direction-major. Each batch row's channels are
        cut in work items of `per_item` channels (the caller makes them whole 64-byte lines of out where that leaves
        enough items, so that two threads rarely write one line); an item scans its channels both ways, so the sum
        needs no locks. A block's steps are read and written as contiguous rows of channels and scanned from
        step-major tiles."""
        batch, length, channels = u.shape
        dt_rank = x_dbl.shape[3] - 2 * N
        slices = (channels + per_item - 1) // per_item
        for item in numba.prange(batch * slices):
            b, s = item // slices, item % slices
            first = s * per_item
            count = min(first + per_item, channels) - first
            w = np.zeros(at.size, dtype=np.float32)
            hs = np.empty((count, N), dtype=np.float32)
            tiles = np.empty((3, TIME_BLOCK, count), dtype=np.float32)  # the block's u, Δ and y, step-major
            u_tile, dt_tile, y_tile = tiles[0], tiles[1], tiles[2]
            for k in range(2):
                hs[:] = f32(0.0)
                biases = bias[k * channels + first : k * channels + first + count]
                for t0 in range(0, length, TIME_BLOCK):
                    span = min(TIME_BLOCK, length - t0)
                    for t in range(span):
                        p = t0 + t if k == 0 else length - 1 - t0 - t
                        projected = x_dbl[b, p, k]
                        for n in range(N):
                            w[at.b_rows + t * N + n] = projected[dt_rank + n]
                            w[at.c_rows + t * N + n] = projected[dt_rank + N + n]
                        u_row, delta_row = u[b, p, first : first + count], delta[k, b, p, first : first + count]
                        for j in range(count):
                            u_tile[t, j] = u_row[j]
                            dt_tile[t, j] = fast_softplus(delta_row[j] + biases[j])
                    for j in range(count):
                        c = k * channels + first + j
                        w[at.a_row : at.a_row + N] = A[c]
                        w[at.state : at.state + N] = hs[j]
                        scan_block(w, u_tile[:span, j], dt_tile[:span, j], D[c], y_tile[:span, j], N)
                        hs[j] = w[at.state : at.state + N]
                    for t in range(span):
                        out_row = out[b, t0 + t if k == 0 else length - 1 - t0 - t, first : first + count]
                        if k == 0:
                            for j in range(count):
                                out_row[j] = y_tile[t, j]
                        else:
                            for j in range(count):
                                out_row[j] += y_tile[t, j]

    return Kernels(forward, backward, both_ways_forward)


class BlockFacts(NamedTuple):
    """What LLVM made of one per-block function on the current target."""

    vector_lanes: int
    """The widest fp32 vector in its IR (1: nothing vectorized)."""
    wide_math: bool
    """Whether it computes in fp64 or converts between floats and int64 (one lane at a time before AVX-512)."""
    isa: str
    """The widest vector registers its machine code uses: avx512, avx, sse, neon or scalar."""


_FLOAT_VECTOR = re.compile(r"<(\d+) x float>")
_WIDE_MATH = re.compile(r"\bdouble\b|(?:fptosi|fptoui) [^\n]* to (?:<\d+ x )?i64|(?:sitofp|uitofp) (?:<\d+ x )?i64")
_ISA_REGISTERS = (
    ("avx512", re.compile(r"%zmm|%[xy]mm(?:1[6-9]|2\d|3[01])\b|\{%k[1-7]\}")),
    ("avx", re.compile(r"%ymm")),
    ("sse", re.compile(r"%xmm")),
    ("neon", re.compile(r"\bv\d+\.(?:4s|2d|8h|16b)\b|\bq\d+\b")),
)


def native_functions(llvm_ir: str) -> str:
    """The definitions of compiled functions in numba's IR, without the CPython and C wrappers and the runtime."""
    bodies = re.findall(r"^define [^\n]*\{\n.*?^\}$", llvm_ir, flags=re.MULTILINE | re.DOTALL)
    return "\n".join(b for b in bodies if "@_ZN" in b.split("\n", 1)[0] and "cpython" not in b.split("(", 1)[0])


def block_facts(dispatcher: Any) -> BlockFacts:
    """`BlockFacts` of a compiled (not cache-loaded) dispatcher's first signature."""
    signature = dispatcher.signatures[0]
    code = native_functions(dispatcher.inspect_llvm(signature))
    assembly = dispatcher.inspect_asm(signature)
    isa = next((name for name, registers in _ISA_REGISTERS if registers.search(assembly)), "scalar")
    lanes = max((int(lanes) for lanes in _FLOAT_VECTOR.findall(code)), default=1)
    return BlockFacts(vector_lanes=lanes, wide_math=_WIDE_MATH.search(code) is not None, isa=isa)


def inspect_blocks(n_state: int = 16) -> dict[str, BlockFacts]:
    """Compile the per-block functions afresh (uncached copies) for the current numba target and report what LLVM
    made of them."""
    scratch = np.zeros(_scratch.py_func(n_state).size, f32)
    steps = np.zeros(TIME_BLOCK, f32)
    calls = {
        "scan_block": (scan_block, (scratch, steps, steps, f32(1.0), steps.copy(), n_state)),
        "recompute_block": (recompute_block, (scratch, steps, steps, f32(1.0), steps.copy(), n_state)),
        "backward_block": (
            backward_block,
            (scratch, steps, steps, steps, steps.copy(), f32(1.0), steps.copy(), n_state),
        ),
    }
    facts = {}
    for name, (function, args) in calls.items():
        fresh = numba.njit(cache=False, **_OPTIONS)(function.py_func)
        fresh(*args)
        facts[name] = block_facts(fresh)
    return facts


def compile_target(n_state: int = 16) -> dict[str, Any]:
    """numba's target CPU and what the scan's per-block functions compile to there (for benchmarks and bug reports).

    Set NUMBA_CPU_NAME and NUMBA_CPU_FEATURES before numba is imported to compile for another CPU."""
    facts = inspect_blocks(n_state)
    return {
        "numba_cpu": numba.config.CPU_NAME or "host",  # type: ignore[attr-defined]  # set at run time
        "numba_isa": min((f.isa for f in facts.values()), key=["scalar", "sse", "neon", "avx", "avx512"].index),
        "scan_fp32_lanes": min(f.vector_lanes for f in facts.values()),
        "scan_wide_math": any(f.wide_math for f in facts.values()),
    }
