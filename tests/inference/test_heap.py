"""`kept_heap`: glibc keeps freed memory for the next allocation while predicting, and returns it afterwards."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from typing import Any, cast

import pytest

from cmt_geo.inference.heap import _glibc

# A child process (so this one's allocator stays as it was): page faults of filling a fresh 200 MB array twice,
# outside and inside `kept_heap`, and the resident memory inside and after (the freed memory goes back).
ALLOCATIONS = """
import json, resource
import numpy as np
from cmt_geo.inference.heap import kept_heap

def faults_of_a_fresh_array():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    np.ones(50 << 20, dtype=np.float32)  # 200 MB, freed at once
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

def resident_mb():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20

result = {"outside": [faults_of_a_fresh_array() for _ in range(2)]}
with kept_heap():
    result["inside"] = [faults_of_a_fresh_array() for _ in range(2)]
    with kept_heap():  # a nested block (or one in another thread) leaving does not end the outer one
        pass
    result["after_inner"] = faults_of_a_fresh_array()
    result["resident_inside"] = resident_mb()
result["resident_after"] = resident_mb()
print(json.dumps(result))
"""


def _allocations(**settings: str) -> dict[str, Any]:
    """What ALLOCATIONS prints, run without the environment's allocator settings but with `settings`."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("MALLOC_")}
    env.pop("GLIBC_TUNABLES", None)
    child = subprocess.run(
        [sys.executable, "-c", ALLOCATIONS], env={**env, **settings}, capture_output=True, text=True, check=True
    )
    return cast(dict[str, Any], json.loads(child.stdout))


def _glibc_version() -> tuple[int, ...]:
    libc = _glibc()
    assert libc is not None
    libc.gnu_get_libc_version.restype = ctypes.c_char_p
    return tuple(int(part) for part in libc.gnu_get_libc_version().decode().split(".")[:2])


@pytest.mark.skipif(_glibc() is None, reason="glibc's allocator only")
def test_freed_memory_is_reused_while_predicting_and_returned_afterwards() -> None:
    if _glibc_version() < (2, 35):
        pytest.skip("glibc before 2.35 takes blocks above 32 MiB from the heap under no setting")
    result = _allocations()
    # outside, glibc unmaps a block that large when it is freed, so the second fill faults its pages in again
    # (at least one fault per 2 MB huge page); inside, the second reuses the first's memory
    assert min(result["outside"]) >= 50
    assert result["inside"][1] < 10 < result["inside"][0]
    assert result["after_inner"] < 10
    assert result["resident_after"] < result["resident_inside"] - 150


@pytest.mark.skipif(_glibc() is None, reason="glibc's allocator only")
@pytest.mark.parametrize(
    "setting",
    [{"MALLOC_MMAP_THRESHOLD_": str(1 << 20)}, {"GLIBC_TUNABLES": f"glibc.malloc.mmap_threshold={1 << 20}"}],
)
def test_a_user_tuned_allocator_is_left_alone(setting: dict[str, str]) -> None:
    result = _allocations(**setting)  # blocks above 1 MiB are mapped and unmapped each time
    assert min(result["inside"]) >= 50
