"""Patches per second: cmt-geo's loader against a plain TorchGeo loader, on a 4096x4096 tiled GeoTIFF pair.

All read 256x256 image + label patches at random, 2 workers, batch 8, in the same run; cmt-geo runs twice, with
TorchGeo's sample dtypes (float32 image, int64 mask) and with compact ones (uint8, converted on the GPU). Bare
rasterio window reads (one process) give the ceiling. Prints one JSON object per loader, then the speed-ups.

    $ .venv/bin/python benchmarks/data_speed.py [--patches 2000] [--size 4096]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import NodataShadowWarning
from rasterio.windows import Window
from torch.utils.data import DataLoader
from torchgeo.datasets import RasterDataset, stack_samples
from torchgeo.samplers import RandomGeoSampler

from cmt_geo.data import RandomPatchSampler, RasterSegmentation
from cmt_geo.data.synthetic import CLASSES, write_raster_pair

PATCH, BATCH, WORKERS = 256, 8, 2


class _Image(RasterDataset):
    filename_glob = "image.tif"


class _Label(RasterDataset):
    filename_glob = "label.tif"
    is_image = False


def _rate(batches: Iterable[Any], patches: int) -> float:
    """Patches per second after the first batch (worker start-up excluded)."""
    iterator = iter(batches)
    next(iterator)
    start = time.perf_counter()
    seen = sum(len(batch["image"]) for batch in iterator)
    elapsed = time.perf_counter() - start
    assert seen == patches - BATCH, (seen, patches)
    return seen / elapsed


def plain_torchgeo(folder: Path, patches: int) -> float:
    dataset = _Image(paths=folder) & _Label(paths=folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        sampler = RandomGeoSampler(dataset, size=PATCH, length=patches)
    loader = DataLoader(dataset, BATCH, sampler=sampler, num_workers=WORKERS, collate_fn=stack_samples)
    return _rate(loader, patches)


def cmt_geo(folder: Path, patches: int, compact: bool = False) -> float:
    dataset = RasterSegmentation(folder / "image.tif", folder / "label.tif", classes=CLASSES, compact=compact)
    sampler = RandomPatchSampler(dataset, PATCH, length=patches, seed=0)
    loader = DataLoader(dataset, BATCH, sampler=sampler, num_workers=WORKERS)
    return _rate(loader, patches)


def bare_rasterio(folder: Path, patches: int) -> float:
    rng = np.random.default_rng(0)
    with rasterio.open(folder / "image.tif") as image, rasterio.open(folder / "label.tif") as label:
        corners = rng.integers(0, image.height - PATCH, (patches, 2))
        start = time.perf_counter()
        for row, col in corners:
            window = Window(int(col), int(row), PATCH, PATCH)
            image.read(window=window)
            label.read(1, window=window)
        return patches / (time.perf_counter() - start)


def main() -> None:
    warnings.simplefilter("ignore", NodataShadowWarning)  # TorchGeo's merge warns on every read; workers inherit this
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patches", type=int, default=2000, help="patches per loader")
    parser.add_argument("--size", type=int, default=4096, help="raster height and width")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_raster_pair(folder / "image.tif", folder / "label.tif", args.size, seed=0)
        rates = {
            "torchgeo RasterDataset & RasterDataset + RandomGeoSampler": plain_torchgeo(folder, args.patches),
            "cmt_geo RasterSegmentation + RandomPatchSampler": cmt_geo(folder, args.patches),
            "cmt_geo, compact samples (uint8 image and mask)": cmt_geo(folder, args.patches, compact=True),
            "bare rasterio window reads (1 process)": bare_rasterio(folder, args.patches),
        }
    for loader, rate in rates.items():
        record = {"loader": loader, "patches_per_s": round(rate, 1), "patch": PATCH, "batch": BATCH}
        print(json.dumps({**record, "workers": 0 if loader.startswith("bare") else WORKERS}))
    plain, ours, compact = list(rates.values())[:3]
    print(json.dumps({"speedup_vs_torchgeo": round(ours / plain, 2), "compact_speedup": round(compact / plain, 2)}))


if __name__ == "__main__":
    main()
