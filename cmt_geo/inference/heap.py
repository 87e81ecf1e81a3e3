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
from collections.abc import Iterator

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: While predicting: blocks up to this size come from the heap, and freed memory up to `_KEEP` stays mapped.
_HEAP_BLOCKS = 256 << 20
_KEEP = 256 << 20
#: Afterwards: glibc's own upper limits for its adaptive thresholds (setting one turns the adaptation off).
_DEFAULT_MMAP_THRESHOLD_MAX = 32 << 20
_ENVIRONMENT = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc, else None (macOS, Windows, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None)  # the symbols the process has loaded, the C library's among them
    return libc if hasattr(libc, "gnu_get_libc_version") else None


@contextlib.contextmanager
def kept_heap() -> Iterator[None]:
    """Within: glibc keeps freed memory (up to 256 MiB per heap) for the next allocations instead of returning it
    to the system. On leaving, free memory is returned (`malloc_trim`) and the thresholds are left at glibc's adaptive
    maxima (32 MiB blocks from the heap, 64 MiB kept). Nothing changes off glibc, or when the environment tunes
    glibc's allocator (MALLOC_* variables, glibc.malloc.* in GLIBC_TUNABLES)."""
    libc = _glibc()
    tuned = any(name in os.environ for name in _ENVIRONMENT) or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", "")
    if libc is None or tuned:
        yield
        return
    libc.mallopt(_M_MMAP_THRESHOLD, _HEAP_BLOCKS)
    libc.mallopt(_M_TRIM_THRESHOLD, _KEEP)
    try:
        yield
    finally:
        libc.mallopt(_M_MMAP_THRESHOLD, _DEFAULT_MMAP_THRESHOLD_MAX)
        libc.mallopt(_M_TRIM_THRESHOLD, 2 * _DEFAULT_MMAP_THRESHOLD_MAX)
        libc.malloc_trim(0)
