"""numba kernels of `RowBlender`: one pass over memory each, rows spread over threads, inner loops over contiguous
columns (they compile to SIMD code; `fast_exp` is a polynomial for that reason).

The blending buffers are rings of R rows: raster row r lives in buffer row r % R.
"""

from __future__ import annotations

import numba
import numpy as np

from cmt_geo.ops._numba import prefer_openmp_thread_pool
from cmt_geo.ops._scan_cpu_kernels import fast_exp

prefer_openmp_thread_pool()

_jit = numba.njit(fastmath=True, cache=True, nogil=True, boundscheck=False)
_jit_parallel = numba.njit(fastmath=True, cache=True, nogil=True, parallel=True, boundscheck=False)


@_jit
def standardize(raw, scale, shift, valid, out):
    """out[i, j, c] = raw[c, i, j] * scale[c] + shift[c] where valid[i, j] (everywhere when `valid` is empty),
    else 0: a (C, H, W) tile of any number type to the (H, W, C) float32 model input. Single-threaded: it runs in
    the reader thread beside the parallel kernels."""
    bands, rows, cols = raw.shape
    masked = valid.size > 0
    flat = out.reshape(rows, cols * bands)
    for i in range(rows):
        target = flat[i]
        for c in range(bands):
            band, s, h = raw[c, i], scale[c], shift[c]
            for j in range(cols):
                target[j * bands + c] = np.float32(band[j]) * s + h
        if masked:
            for j in range(cols):
                if not valid[i, j]:
                    out[i, j, :] = 0


@_jit_parallel
def accumulate(sums, weight, logits, tile_weight, row, col, chunks):
    """For the (K, h, w) class logits of the window at raster row `row`, column `col` (any strides: NCHW or
    channels-last): add softmax(logits[:, i, j]) * tile_weight[i, j] to the class sums and tile_weight[i, j] to the
    weight of the pixel (when `weight` is not empty). The rows go to threads in `chunks` contiguous parts, each with
    its scratch allocated once."""
    classes, rows, cols = logits.shape
    ring = sums.shape[1]
    weighed = weight.size > 0
    chunks = min(rows, chunks)
    for chunk in numba.prange(chunks):
        exps = np.empty((classes, cols), dtype=np.float32)
        top = np.empty(cols, dtype=np.float32)
        scale = np.empty(cols, dtype=np.float32)
        for i in range(chunk * rows // chunks, (chunk + 1) * rows // chunks):
            for k in range(classes):  # (K, w), transposed here when channels-last; faster than a slice copy
                source, scratch = logits[k, i], exps[k]
                for j in range(cols):
                    scratch[j] = source[j]
            top[:] = exps[0]
            for k in range(1, classes):
                for j in range(cols):
                    top[j] = max(top[j], exps[k, j])
            scale[:] = 0
            for k in range(classes):
                for j in range(cols):
                    exps[k, j] = fast_exp(exps[k, j] - top[j])
                    scale[j] += exps[k, j]
            w = tile_weight[i]
            at = (row + i) % ring
            for j in range(cols):
                scale[j] = w[j] / scale[j]
            # sliced to the window's columns: indexing at col + j would keep the loops from vectorizing
            if weighed:
                pixel_weight = weight[at, col : col + cols]
                for j in range(cols):
                    pixel_weight[j] += w[j]
            for k in range(classes):
                out, probability = sums[k, at, col : col + cols], exps[k]
                for j in range(cols):
                    out[j] += probability[j] * scale[j]


@_jit_parallel
def classify(sums, weight, top, nodata, classes):
    """classes[i, j] = argmax_k of the sums of raster row top + i (the first on ties) where a window covered the
    pixel (its top sum is above 0: every window adds a positive weight times probabilities summing to 1), else
    `nodata`; those buffer rows (and the weight's, when it is kept) are then cleared for reuse."""
    kinds, ring, width = sums.shape
    for i in numba.prange(classes.shape[0]):
        at = (top + i) % ring
        best_sum = sums[0, at].copy()
        best = np.zeros(width, dtype=np.uint8)
        for k in range(1, kinds):
            candidate = sums[k, at]
            for j in range(width):
                if candidate[j] > best_sum[j]:
                    best_sum[j] = candidate[j]
                    best[j] = k
        out = classes[i]
        for j in range(width):
            out[j] = best[j] if best_sum[j] > 0 else nodata
        sums[:, at] = 0
        if weight.size > 0:
            weight[at] = 0


@numba.njit(inline="always")
def _count(value, a, b, c, nodata):
    """How often `value` appears among itself, a, b and c; 0 when it is `nodata`."""
    return (value != nodata) * (1 + (value == a) + (value == b) + (value == c))


@numba.njit(inline="always")
def _mode4(v0, v1, v2, v3, nodata):
    """The most frequent of four values other than `nodata` (the smallest on ties), else `nodata`."""
    best, most = nodata, 0
    for value, count in (
        (v0, _count(v0, v1, v2, v3, nodata)),
        (v1, _count(v1, v0, v2, v3, nodata)),
        (v2, _count(v2, v0, v1, v3, nodata)),
        (v3, _count(v3, v0, v1, v2, nodata)),
    ):
        if count > most or (count == most and count > 0 and value < best):
            best, most = value, count
    return best


@_jit_parallel
def mode2x2(classes, nodata, out):
    """out[r, c] = the most frequent value other than `nodata` among classes[2r:2r+2, 2c:2c+2] (the smallest on
    ties), `nodata` when there is none; a block at the right or bottom edge may hold fewer than 4 pixels."""
    rows, width = classes.shape
    pairs = width // 2
    nodata = classes.dtype.type(nodata)
    for r in numba.prange(out.shape[0]):
        upper = classes[2 * r]
        lower = classes[2 * r + 1] if 2 * r + 1 < rows else np.full(width, nodata, dtype=classes.dtype)
        target = out[r]
        for c in range(pairs):
            target[c] = _mode4(upper[2 * c], upper[2 * c + 1], lower[2 * c], lower[2 * c + 1], nodata)
        if width % 2:
            target[pairs] = _mode4(upper[width - 1], nodata, lower[width - 1], nodata, nodata)
