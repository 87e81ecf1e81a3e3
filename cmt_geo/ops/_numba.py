"""The numba setting every cmt-geo kernel module applies before its first parallel launch."""

from __future__ import annotations

import os

import numba


def prefer_openmp_thread_pool() -> None:
    """Launch numba's parallel kernels on its OpenMP layer where it loads (else TBB, else numba's workqueue).

    The workqueue runs a kernel on threads of its own while the calling thread waits, so a kernel's data moves to
    other cores and every launch wakes sleeping threads; OpenMP runs part of it on the calling thread. On the 2-core
    Xeon, side by side: the scan's forward + backward at 1x768x256 took 9 ms on OpenMP and 11-18 ms on the
    workqueue, cmt_unet_tiny's forward 178 against 220 ms on 2 threads. `use_torch_threads` starts the pool and
    restores torch's thread count, which numba's OpenMP layer resets when it starts. GNU OpenMP is not fork-safe:
    a process forked after a kernel ran must not run one (numba stops it with a message); use the "spawn" start
    method, or NUMBA_THREADING_LAYER=workqueue. The user's NUMBA_THREADING_LAYER or NUMBA_THREADING_LAYER_PRIORITY
    wins."""
    if "NUMBA_THREADING_LAYER" in os.environ or "NUMBA_THREADING_LAYER_PRIORITY" in os.environ:
        return
    numba.config.THREADING_LAYER_PRIORITY = ["omp", "tbb", "workqueue"]  # type: ignore[attr-defined]


def use_torch_threads() -> None:
    """Run numba's parallel kernels on as many threads as torch uses, starting numba's thread pool the first time,
    and keep torch's count as it was (numba's OpenMP layer resets it when it starts)."""
    import torch

    threads = torch.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
