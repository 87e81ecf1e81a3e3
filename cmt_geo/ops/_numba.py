"""The numba setting every cmt-geo kernel module applies before its first parallel launch."""

from __future__ import annotations

import os

import numba


def prefer_sleeping_thread_pools() -> None:
    """Launch numba's parallel kernels on a pool whose idle threads sleep (TBB, else numba's workqueue) rather than on
    a second OpenMP runtime: torch ships its own libgomp, and two OpenMP pools spinning on the same cores cost
    `predict_raster` about a sixth of its CPU time (16384² on 2 cores: 27.2 instead of 32.7 CPU seconds). The user's
    NUMBA_THREADING_LAYER or NUMBA_THREADING_LAYER_PRIORITY wins."""
    if "NUMBA_THREADING_LAYER" in os.environ or "NUMBA_THREADING_LAYER_PRIORITY" in os.environ:
        return
    numba.config.THREADING_LAYER_PRIORITY = ["tbb", "workqueue", "omp"]  # type: ignore[attr-defined]
