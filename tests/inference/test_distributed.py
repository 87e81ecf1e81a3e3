"""Prediction split over ranks (torch.distributed, gloo on CPU) gives exactly the one-process result."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from cmt_geo.inference import PredictOptions, predict_raster

from ..conftest import write_raster

WORKER = """
import sys, torch.distributed as dist
from cmt_geo.inference import PredictOptions, predict_raster
rank, world, init, source, output, checkpoint = int(sys.argv[1]), int(sys.argv[2]), *sys.argv[3:]
dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
options = PredictOptions(tile_size=64, overlap=16, batch_size=2, device="cpu")
predict_raster(source, output, checkpoint, options=options, confidence=output.replace(".tif", "-confidence.tif"))
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_two_gloo_ranks_write_what_one_process_writes(tmp_path: Path, checkpoint: Path) -> None:
    source = write_raster(tmp_path / "in.tif", 173, 131, seed=4)
    options = PredictOptions(tile_size=64, overlap=16, batch_size=2, device="cpu")
    single = predict_raster(
        source, tmp_path / "one.tif", checkpoint, options=options, confidence=tmp_path / "one-confidence.tif"
    )
    init = f"file://{tmp_path / 'rendezvous'}"
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                str(rank),
                "2",
                init,
                str(source),
                str(tmp_path / "two.tif"),
                str(checkpoint),
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(2)
    ]
    for worker in workers:
        _, stderr = worker.communicate(timeout=300)
        assert worker.returncode == 0, stderr
    for one, two in ((single.classes, tmp_path / "two.tif"), (single.confidence, tmp_path / "two-confidence.tif")):
        assert one is not None
        with rasterio.open(one) as a, rasterio.open(two) as b:
            assert np.array_equal(a.read(), b.read())
            assert (a.transform, a.crs, a.tags()) == (b.transform, b.crs, b.tags())
    leftovers = sorted(p.name for p in tmp_path.iterdir() if "staging" in p.name or "part" in p.name)
    assert leftovers == []
