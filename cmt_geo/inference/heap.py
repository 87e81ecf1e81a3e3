"""Keeping freed memory in the process while a prediction streams, on glibc (Linux).

Prediction allocates and frees the same large buffers (model outputs, GDAL blocks) every batch. glibc hands large
blocks back to the system as soon as the free space at the top of its heap passes a threshold (64 MiB at most), so
the next batch maps them again and the kernel zeroes every page: predicting a 16384x16384 raster took 1.1 million
page faults and 3.6 of its 25 CPU seconds in the kernel (69,000 and 0.7 s with `kept_heap`). PyTorch's CPU tuning
guide suggests a caching allocator (jemalloc, tcmalloc); `kept_heap` gets the same from glibc itself with `mallopt`,
for the duration of a prediction only.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
import threading
from collections.abc import Iterator

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: While predicting: blocks up to this size come from the heap (glibc before 2.35 refuses more than 32 MiB, then
#: that), and free memory up to `_KEEP` at the top of a heap stays mapped.
_HEAP_BLOCKS = 256 << 20
_KEEP = 256 << 20
#: Afterwards: glibc's own upper limits for its adaptive thresholds (setting one turns the adaptation off).
_DEFAULT_MMAP_THRESHOLD_MAX = 32 << 20
_ENVIRONMENT = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")

_lock = threading.Lock()
_users = 0  # kept_heap blocks running now, in any thread: the first sets the thresholds, the last restores them


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc, else None (macOS, Windows, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None)  # the symbols the process has loaded, the C library's among them
    if not hasattr(libc, "gnu_get_libc_version"):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    return libc


def _keep(libc: ctypes.CDLL) -> None:
    """Set the thresholds `kept_heap` works with; the mmap threshold first (setting the trim threshold freezes the
    mmap threshold where glibc's adaptation left it)."""
    if not libc.mallopt(_M_MMAP_THRESHOLD, _HEAP_BLOCKS):
        libc.mallopt(_M_MMAP_THRESHOLD, _DEFAULT_MMAP_THRESHOLD_MAX)
    libc.mallopt(_M_TRIM_THRESHOLD, _KEEP)


def _restore(libc: ctypes.CDLL) -> None:
    """Leave glibc's adaptive maxima and return free memory to the system."""
    libc.mallopt(_M_MMAP_THRESHOLD, _DEFAULT_MMAP_THRESHOLD_MAX)
    libc.mallopt(_M_TRIM_THRESHOLD, 2 * _DEFAULT_MMAP_THRESHOLD_MAX)
    libc.malloc_trim(0)


@contextlib.contextmanager
def kept_heap() -> Iterator[None]:
    """Within: glibc keeps freed memory for the next allocations instead of returning it to the system (up to
    256 MiB at the top of each heap; threads other than the main one have heaps of 64 MiB at most, so larger blocks
    they allocate are still mapped afresh). Blocks may nest and run in several threads at once: the settings hold
    until the last one leaves, which returns free memory (`malloc_trim`) and leaves the thresholds at glibc's
    adaptive maxima (32 MiB blocks from the heap, 64 MiB kept). Nothing changes off glibc, or when the environment
    tunes glibc's allocator (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_, MALLOC_TOP_PAD_, MALLOC_MMAP_MAX_, or
    glibc.malloc.* in GLIBC_TUNABLES)."""
    global _users
    libc = _glibc()
    tuned = any(name in os.environ for name in _ENVIRONMENT) or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", "")
    if libc is None or tuned:
        yield
        return
    with _lock:
        _users += 1
        if _users == 1:
            _keep(libc)
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                _restore(libc)
