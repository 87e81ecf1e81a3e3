"""Selective-scan speed: every available backend against `selective_scan_ref` (and mamba-ssm's kernel on CUDA).

Prints one JSON line describing the target (CPU, torch's CPU capability, numba's compile target and the fp32 vector
width of the compiled "cpu" kernels, thread counts), then one per (shape, pass, backend) with the median
milliseconds and the speedups against the reference (and the mamba kernel when present) measured in the same run.

The target line's numba fields come from compiling the "cpu" kernels' per-block functions afresh in a child process
and reading their LLVM IR and assembly (`cmt_geo.ops._scan_cpu_kernels.compile_target`). To time what numba
generates for another CPU, set both of numba's variables (NUMBA_CPU_NAME alone keeps this machine's features,
AVX-512 included):

    $ .venv/bin/python benchmarks/scan.py [--device cuda] [--repeat 5] [--shapes 1x768x4096 1x768x256]
    $ NUMBA_CPU_NAME=haswell NUMBA_CPU_FEATURES= ATEN_CPU_CAPABILITY=avx2 .venv/bin/python benchmarks/scan.py
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from cmt_geo.ops import available_backends, selective_scan

D_STATE, GROUPS = 16, 4


def make_inputs(batch: int, channels: int, length: int, device: str, requires_grad: bool) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    tensors = {
        "u": torch.randn(batch, channels, length, generator=gen),
        "delta": torch.randn(batch, channels, length, generator=gen) * 0.5 - 1.0,
        "A": -torch.exp(torch.randn(channels, D_STATE, generator=gen) * 0.5),
        "B": torch.randn(batch, GROUPS, D_STATE, length, generator=gen),
        "C": torch.randn(batch, GROUPS, D_STATE, length, generator=gen),
        "D": torch.ones(channels),
        "delta_bias": torch.rand(channels, generator=gen) * 0.1,
    }
    return {k: v.to(device).requires_grad_(requires_grad) for k, v in tensors.items()}


def median_ms(run: Callable[[], None], device: str, repeat: int) -> float:
    run()  # warm-up: compilation, caches
    times = []
    for _ in range(repeat):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        run()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def measure(backend: str, shape: tuple[int, int, int], device: str, backward: bool, repeat: int) -> float:
    inputs = make_inputs(*shape, device=device, requires_grad=backward)

    def run() -> None:
        out = selective_scan(
            inputs["u"],
            inputs["delta"],
            inputs["A"],
            inputs["B"],
            inputs["C"],
            inputs["D"],
            delta_bias=inputs["delta_bias"],
            delta_softplus=True,
            backend=backend,
        )
        if backward:
            out.backward(torch.ones_like(out))

    if backward:
        return median_ms(run, device, repeat)
    with torch.no_grad():
        return median_ms(run, device, repeat)


def cpu_model() -> str:
    """The CPU's model name (Linux), else what `platform` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def target_report(device: str, backends: list[str]) -> dict[str, Any]:
    """What this run measures on: the CPU, torch's kernels, numba's target and the scan kernels' vector width."""
    report: dict[str, Any] = {
        "kind": "target",
        "cpu": cpu_model(),
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
    }
    if "cpu" in backends:
        # In a child process: compiling the inspection copies here slows the timed backward down by half (memory).
        code = "import json, cmt_geo.ops._scan_cpu_kernels as k; print(json.dumps(k.compile_target()))"
        child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        report.update(json.loads(child.stdout))
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--shapes", nargs="+", default=["1x768x4096", "1x768x256"])
    parser.add_argument("--backends", nargs="+", default=None, help="default: every backend available")
    parser.add_argument("--threads", type=int, default=None, help="torch (and numba) threads; default: torch's")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    backends = args.backends or available_backends(args.device)
    print(json.dumps(target_report(args.device, backends)), flush=True)
    for text in args.shapes:
        batch, channels, length = (int(v) for v in text.split("x"))
        shape = (batch, channels, length)
        for backward in (False, True):
            timings = {name: measure(name, shape, args.device, backward, args.repeat) for name in backends}
            for name, ms in timings.items():
                record = {
                    "benchmark": "selective_scan",
                    "pass": "forward+backward" if backward else "forward",
                    "shape": list(shape),
                    "d_state": D_STATE,
                    "groups": GROUPS,
                    "dtype": "float32",
                    "device": args.device,
                    "threads": torch.get_num_threads(),
                    "backend": name,
                    "ms": round(ms, 3),
                }
                if "ref" in timings:
                    record["speedup_vs_ref"] = round(timings["ref"] / ms, 2)
                if "mamba" in timings:
                    record["speedup_vs_mamba"] = round(timings["mamba"] / ms, 3)
                print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
