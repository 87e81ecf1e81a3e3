"""Throughput and peak memory of `cmt_geo.predict_raster` on large synthetic rasters.

The input is a 3-band uint8 GeoTIFF (tiled 512, uncompressed, UTM at 0.5 m) tiled from a rendered synthetic scene.
Each run predicts it in a fresh process (so peak RSS is that run's alone) and prints one JSON line: model, size,
megapixels per second end to end (reading, model, blending, striped writes and the COG copy with overviews), CPU
seconds of all threads (a check when the machine is busy) and peak RSS. Two models:

- `conv1x1`: a single 1x1 convolution, so the pipeline itself is measured. Goals on a 2-core CPU: at least
  20 Mpix/s, and peak RSS for 16384x16384 at most 1.3x that for 4096x4096 and under 2 GB.
- `cmt_unet_tiny`: the runs also time the bare batched forward on the same number of tiles of the same size and
  batch size (`bare_mpix_per_s`, in input pixels); goal: end to end at least 80 % of it (`of_bare`).

    $ .venv/bin/python benchmarks/predict.py [--runs conv1x1:4096 conv1x1:16384 cmt_unet_tiny:2048]
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

SCENE = 1024  # side of the rendered scene the input repeats
CLASSES = ("impervious", "building", "low_vegetation", "tree", "car", "clutter")
COLORS = ((255, 255, 255), (0, 0, 255), (0, 255, 255), (0, 255, 0), (255, 255, 0), (255, 0, 0))
PATCH = 512
BATCH = 4


def write_input(path: Path, size: int) -> None:
    """Write a size x size 3-band uint8 raster, strip by strip, repeating one rendered synthetic scene."""
    from cmt_geo.data.synthetic import make_scene, render

    image = render(make_scene(SCENE, SCENE, seed=0), 0, SCENE)[0][:3]  # (3, SCENE, SCENE) uint8: R, G, B
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "height": size,
        "width": size,
        "count": 3,
        "dtype": "uint8",
        "crs": "EPSG:32632",
        "transform": from_origin(500_000.0, 5_000_000.0, 0.5, 0.5),
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
    }
    repeats = -(-size // SCENE)
    strip = np.tile(image, (1, 1, repeats))[:, :, :size]
    with rasterio.open(path, "w", **profile) as dst:
        for top in range(0, size, SCENE):
            rows = min(SCENE, size - top)
            dst.write(strip[:, :rows], window=Window(0, top, size, rows))


def _model(name: str) -> tuple[Any, Any]:
    """A (model, card) pair: a 1x1 convolution or a randomly initialised preset, optimized for inference."""
    import torch

    from cmt_geo.card import ArchitectureArgs, ModelCard, NormalizationStats

    torch.manual_seed(0)
    stats = NormalizationStats(mean=(120.0,) * 3, std=(60.0,) * 3, bands=("red", "green", "blue"))
    if name == "conv1x1":
        conv = torch.nn.Conv2d(3, len(CLASSES), 1)
        return conv, ModelCard("conv1x1", ArchitectureArgs({}), CLASSES, COLORS, stats, PATCH, 0.5)
    from cmt_geo.models import create_model, optimize_for_inference

    model = create_model(name, num_classes=len(CLASSES), in_channels=3)
    card = ModelCard.for_model(model, class_names=CLASSES, class_colors=COLORS, normalization=stats, patch_size=PATCH)
    return optimize_for_inference(model, inplace=True), card  # as `predict_raster` runs a checkpoint


class _CogTime(logging.Handler):
    """Picks the COG copy's seconds out of the engine's debug log."""

    seconds: float | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("Cloud-Optimized GeoTIFFs written"):
            self.seconds = round(float(record.args[0]), 2)  # type: ignore[index, arg-type]


def _bare_forward(model: Any, tiles: int, tile: int) -> float:
    """Seconds of `tiles` forward passes of (BATCH, 3, tile, tile) random images, in batches of BATCH."""
    import torch

    model.eval()
    batches = -(-tiles // BATCH)
    image = torch.randn(BATCH, 3, tile, tile).contiguous(memory_format=torch.channels_last)  # as predict feeds it
    with torch.inference_mode():
        model(image)  # warm-up
        start = time.perf_counter()
        for _ in range(batches):
            model(image).softmax(dim=1)
        return time.perf_counter() - start


def _run(source: Path, output: Path, name: str, size: int, bare: bool) -> dict[str, Any]:
    """Predict once (in a child process) and measure it."""
    import torch

    from cmt_geo import PredictOptions, predict_raster
    from cmt_geo.io.grid import grid_windows

    model, card = _model(name)
    options = PredictOptions(batch_size=BATCH, device="cpu")
    cog = _CogTime()
    logging.getLogger("cmt_geo.inference.engine").addHandler(cog)
    logging.getLogger("cmt_geo.inference.engine").setLevel(logging.DEBUG)
    start, cpu_start = time.perf_counter(), time.process_time()
    predict_raster(source, output, (model, card), options=options, overwrite=True)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    record: dict[str, Any] = {
        "model": name,
        "width": size,
        "height": size,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu_seconds, 2),  # all threads; less sensitive than seconds to other load
        "cog_seconds": cog.seconds,  # of `seconds`: the final copy to Cloud-Optimized GeoTIFF
        "mpix_per_s": round(size * size / seconds / 1e6, 2),
        "peak_rss_mb": round(peak),
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    if bare:
        tile, stride = options.grid(card.patch_size)
        tiles = sum(1 for _ in grid_windows(size, size, (tile, tile), (stride, stride)))
        forward = _bare_forward(model, tiles, tile)
        record["bare_mpix_per_s"] = round(size * size / forward / 1e6, 3)
        record["of_bare"] = round(forward / seconds, 3)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs",
        nargs="+",
        default=["conv1x1:4096", "conv1x1:16384", "cmt_unet_tiny:2048"],
        help="MODEL:SIZE pairs (models: conv1x1 or a preset name)",
    )
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as folder:
        for run in args.runs:
            name, size_text = run.split(":")
            size = int(size_text)
            source = Path(folder) / f"input-{size}.tif"
            if not source.exists():
                write_input(source, size)
            with context.Pool(1) as pool:
                record = pool.apply(_run, (source, Path(folder) / "classes.tif", name, size, name != "conv1x1"))
            print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
