"""Size and speed of every model preset: parameters, MACs, CPU latency and, with CUDA, training and prediction speed.

Prints one JSON object per line:
  {"kind": "target", "cpu", "torch_cpu_capability", "numba_cpu", "numba_isa", ...}    what the CPU runs measure on
  {"kind": "size", "model", "params_m", "gmacs_256_no_scan", "gmacs_256_with_scan"}
  {"kind": "cpu", "model", "threads", "threads_after", "forward_ms", "forward_no_scan_ms", "optimized_ms",
      "optimized_no_scan_ms", "forward_bf16_ms"}
      1x3x256x256, channels-last, median: the plain eval model and `optimize_for_inference(model)`, each also with
      the selective scan replaced by identity (the non-scan time); "threads_after" is torch's thread count after
      the runs (a scan backend that resets it shows here)
  {"kind": "throughput", "model", "device", "train_img_s", "train_peak_gib", "predict_mpix_s", "predict_peak_gib"}
      (with --throughput-device cpu the same runs on the CPU, e.g. to check the script without a GPU)
      train: batch 8, 256x256, bf16 autocast, AdamW step; predict: batch 32, 256x256, bf16 autocast.
MACs come from torch's FlopCounterMode (one MAC = 2 FLOPs) with the selective scan counted as
9 * B * L * D * N MACs (the convention of VMamba's FLOP counter), so "no_scan" leaves it out.
The target line's numba fields come from a child process, as in benchmarks/scan.py. To time AVX2 code paths on an
AVX-512 machine, set torch's and numba's variables:

    $ .venv/bin/python benchmarks/model_speed.py [--models cmt_unet_base cmt_unet_tiny] [--threads 1 2] [--repeats 5]
    $ ATEN_CPU_CAPABILITY=avx2 NUMBA_CPU_NAME=haswell NUMBA_CPU_FEATURES= .venv/bin/python benchmarks/model_speed.py \
        --models cmt_unet_base cmt_unet_tiny --skip-size --throughput-device none
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import torch
from scan import target_report  # benchmarks/scan.py, beside this script
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import cmt_geo.layers.ss2d
from cmt_geo.layers.ss2d import SS2D
from cmt_geo.models import create_model, list_models, optimize_for_inference

SIZE = 256
NUM_CLASSES = 6
TRAIN_BATCH, PREDICT_BATCH = 8, 32


def scan_macs(model: nn.Module, x: torch.Tensor) -> int:
    """MACs of the selective scans in one forward: 9 * B * L * D * N summed over SS2D modules (4 directions)."""
    total = 0

    def count(module: nn.Module, inputs: tuple[torch.Tensor, ...], _: Any) -> None:
        nonlocal total
        assert isinstance(module, SS2D)
        batch, height, width, _channels = inputs[0].shape
        total += 9 * batch * height * width * module.A_logs.numel()  # A_logs: (directions * d_inner, d_state)

    handles = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, SS2D)]
    with torch.inference_mode():
        model(x)
    for handle in handles:
        handle.remove()
    return total


def size_report(name: str) -> dict[str, Any]:
    """Parameters and MACs at 1x3x256x256 (explicit attention math: the counter has no formula for fused kernels)."""
    model = create_model(name, NUM_CLASSES, fused_attention=False).eval()
    x = torch.randn(1, 3, SIZE, SIZE)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(x)
    no_scan = counter.get_total_flops() / 2
    return {
        "kind": "size",
        "model": name,
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
        "gmacs_256_no_scan": round(no_scan / 1e9, 2),
        "gmacs_256_with_scan": round((no_scan + scan_macs(model, x)) / 1e9, 2),
    }


def _median_seconds(step: Callable[[], object], repeats: int, synchronize: Callable[[], None]) -> float:
    step()
    synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _prepare(name: str, device: str, compile_model: bool) -> nn.Module:
    model: nn.Module = create_model(name, NUM_CLASSES).to(device).to(memory_format=torch.channels_last)
    return cast(nn.Module, torch.compile(model, dynamic=False)) if compile_model else model


@contextmanager
def scan_replaced_by_identity() -> Iterator[None]:
    """Inside the block, every SS2D's selective scans (the four-copy ones and the CPU inference kernel that scans both
    ways) return their input u: the forward without the scans' cost."""
    layer = cmt_geo.layers.ss2d
    scans = {name: getattr(layer, name) for name in ("selective_scan", "selective_scan_both_ways_cpu")}
    for name in scans:
        setattr(layer, name, lambda u, *args, **kwargs: u)
    try:
        yield
    finally:
        for name, scan in scans.items():
            setattr(layer, name, scan)


def cpu_report(name: str, repeats: int, compile_model: bool, threads: int) -> dict[str, Any]:
    """Median forward latency at 1x3x256x256 on `threads` CPU threads: plain eval model, optimized copy, bf16."""
    torch.set_num_threads(threads)
    model = _prepare(name, "cpu", compile_model).eval()
    optimized = optimize_for_inference(create_model(name, NUM_CLASSES))
    x = torch.randn(1, 3, SIZE, SIZE).to(memory_format=torch.channels_last)

    def timed(module: nn.Module, bf16: bool = False) -> float:
        def forward() -> object:
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                return module(x)

        return round(1000 * _median_seconds(forward, repeats, lambda: None), 1)

    report: dict[str, Any] = {"kind": "cpu", "model": name, "threads": threads, "compiled": compile_model}
    report["forward_ms"] = timed(model)
    report["optimized_ms"] = timed(optimized)
    with scan_replaced_by_identity():
        report["forward_no_scan_ms"] = timed(model)
        report["optimized_no_scan_ms"] = timed(optimized)
    try:
        report["forward_bf16_ms"] = timed(model, bf16=True)
    except RuntimeError as error:  # torch 2.14's bf16 CPU flash attention needs AVX-512 ("pack_vnni2")
        report["forward_bf16_ms"], report["bf16_error"] = None, str(error).splitlines()[0]
    report["threads_after"] = torch.get_num_threads()
    return report


def throughput_report(name: str, device: str, repeats: int, compile_model: bool) -> dict[str, Any]:
    """Training images/s (batch 8, bf16, AdamW) and prediction megapixels/s (batch 32, bf16) with peak memory."""
    on_cuda = device == "cuda"
    synchronize = torch.cuda.synchronize if on_cuda else (lambda: None)
    model = _prepare(name, device, compile_model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    images = torch.randn(TRAIN_BATCH, 3, SIZE, SIZE, device=device).to(memory_format=torch.channels_last)
    labels = torch.randint(0, NUM_CLASSES, (TRAIN_BATCH, SIZE, SIZE), device=device)

    def train_step() -> None:
        with torch.autocast(device, dtype=torch.bfloat16):
            loss = nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def peak_gib() -> float | None:
        return round(torch.cuda.max_memory_allocated() / 2**30, 2) if on_cuda else None

    model.train()
    train_step()
    if on_cuda:
        torch.cuda.reset_peak_memory_stats()
    train_seconds = _median_seconds(train_step, repeats, synchronize)
    train_peak = peak_gib()

    optimizer.state.clear()  # free the AdamW moments and gradients: predict's peak excludes training state
    model.zero_grad(set_to_none=True)
    model.eval()
    batch = torch.randn(PREDICT_BATCH, 3, SIZE, SIZE, device=device).to(memory_format=torch.channels_last)

    def predict() -> object:
        with torch.inference_mode(), torch.autocast(device, dtype=torch.bfloat16):
            return model(batch).argmax(dim=1)

    predict()
    if on_cuda:
        torch.cuda.reset_peak_memory_stats()
    predict_seconds = _median_seconds(predict, repeats, synchronize)
    return {
        "kind": "throughput",
        "model": name,
        "device": torch.cuda.get_device_name() if on_cuda else "cpu",
        "compiled": compile_model,
        "train_img_s": round(TRAIN_BATCH / train_seconds, 1),
        "train_peak_gib": train_peak,
        "predict_mpix_s": round(PREDICT_BATCH * SIZE * SIZE / predict_seconds / 1e6, 1),
        "predict_peak_gib": peak_gib(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list_models(), choices=list_models())
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="torch.compile the plain models")
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="CPU thread counts to time")
    parser.add_argument("--skip-cpu", action="store_true", help="skip the CPU latency runs")
    parser.add_argument("--skip-size", action="store_true", help="skip parameter and MAC counts")
    parser.add_argument(
        "--throughput-device",
        default="cuda",
        help="device of the train/predict runs (skipped when it is 'cuda' and none, or 'none')",
    )
    args = parser.parse_args()
    if not args.skip_cpu:
        print(json.dumps(target_report("cpu", ["cpu"])), flush=True)
    for name in args.models:
        if not args.skip_size:
            print(json.dumps(size_report(name)), flush=True)
        if not args.skip_cpu:
            for threads in args.threads:
                print(json.dumps(cpu_report(name, args.repeats, args.compile, threads)), flush=True)
        if (args.throughput_device == "cuda" and torch.cuda.is_available()) or args.throughput_device not in {
            "cuda",
            "none",
        }:
            print(json.dumps(throughput_report(name, args.throughput_device, args.repeats, args.compile)), flush=True)


if __name__ == "__main__":
    main()
