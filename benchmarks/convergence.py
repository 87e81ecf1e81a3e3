"""Convergence: how far `cmtgeo train` with configs/synthetic.yaml takes cmt_unet_tiny on synthetic scenes in a budget.

Synthetic scenes (`cmt_geo.data.synthetic`, unchanged) are written as GeoTIFF pairs: some to train on, others held
out. The recipe is configs/synthetic.yaml as it stands (plus any --set), trained through `cmt_geo.training.train`
on the CPU for its fixed number of steps (300: about 7 minutes on 2 idle cores), stopped early if it runs past
--max-minutes (10) when other processes load the machine. The held-out scenes are then predicted whole with 256 px
sliding windows, twice the training patch: fewer window borders (`cmt_geo.evaluation.evaluate`), and scored over all
six classes. Prints the per-class IoU and ends with one JSON line holding at least `miou` and `seconds` (the
training time) and the machine's load average, since the CPU is shared.

Goal on a 2-core CPU: mIoU >= 0.70 within 10 minutes (tests/training/test_convergence.py checks a shorter run).

    $ .venv/bin/python benchmarks/convergence.py [--steps 300] [--max-minutes 10] [--set loss.name=focal ...]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "synthetic.yaml"


def write_scenes(folder: Path, train: int, test: int, size: int) -> list[str]:
    """Write `train` + `test` synthetic scene pairs under images/ and labels/; returns the test scene names."""
    from cmt_geo.data.synthetic import write_raster_pair

    names = [(f"train{i}", 100 + i) for i in range(train)] + [(f"test{i}", 200 + i) for i in range(test)]
    for folder_name in ("images", "labels"):
        (folder / folder_name).mkdir(parents=True, exist_ok=True)
    for name, seed in names:
        write_raster_pair(folder / "images" / f"{name}.tif", folder / "labels" / f"{name}.tif", size, seed=seed)
    return [name for name, _ in names if name.startswith("test")]


def run(
    steps: int | None = None,
    max_minutes: float = 10.0,
    overrides: Sequence[str] = (),
    train_scenes: int = 4,
    test_scenes: int = 2,
    size: int = 1024,
    folder: Path | None = None,
    tile_size: int = 256,
) -> dict[str, Any]:
    """Write the scenes, train for `steps` (the config's when None) or at most `max_minutes`, and score the held-out
    scenes predicted with `tile_size` windows; returns the JSON record."""
    from cmt_geo.evaluation import evaluate
    from cmt_geo.inference import PredictOptions
    from cmt_geo.training import build_dataset, load_config, train

    with tempfile.TemporaryDirectory(prefix="cmtgeo-convergence-") as scratch:
        root = folder or Path(scratch)
        test_names = write_scenes(root / "data", train_scenes, test_scenes, size)
        settings = [
            f"data.root={root / 'data' / 'images'}",
            f"data.labels={root / 'data' / 'labels'}",
            f"data.test_images=[{', '.join(test_names)}]",
            "data.val_fraction=0",  # the whole budget trains; the held-out scenes score the last weights
            f"trainer.max_minutes={max_minutes}",
            *([f"trainer.max_steps={steps}"] if steps is not None else []),
        ]
        config = load_config(CONFIG, [*settings, *overrides])
        start = time.perf_counter()
        result = train(config, root / "run", overwrite=True)
        seconds = time.perf_counter() - start
        test = build_dataset(config.data, "test")
        options = PredictOptions(tile_size=tile_size, batch_size=8, device="cpu")
        scored = evaluate(result.last, test, split="test", options=options)
    names = scored.class_names
    return {
        "miou": scored.scores.miou,
        "seconds": round(seconds, 1),
        "steps": result.steps,
        "planned_steps": config.trainer.max_steps,
        "iou": dict(zip(names, scored.scores.iou, strict=True)),
        "miou_without_clutter": float(sum(scored.scores.iou[:5]) / 5),
        "oa": scored.scores.oa,
        "architecture": config.model.architecture,
        "overrides": list(overrides),
        "load_average": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, help="optimizer steps [configs/synthetic.yaml's trainer.max_steps]")
    parser.add_argument("--max-minutes", type=float, default=10.0, help="stop training after this long")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--train-scenes", type=int, default=4)
    parser.add_argument("--test-scenes", type=int, default=2)
    parser.add_argument("--size", type=int, default=1024, help="scene side in pixels")
    parser.add_argument("--keep", type=Path, help="write the scenes and the run here instead of a temporary folder")
    parser.add_argument("--tile-size", type=int, default=256, help="prediction window of the held-out scenes")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    record = run(
        steps=args.steps,
        max_minutes=args.max_minutes,
        overrides=args.overrides,
        train_scenes=args.train_scenes,
        test_scenes=args.test_scenes,
        size=args.size,
        folder=args.keep,
        tile_size=args.tile_size,
    )
    for name, iou in record["iou"].items():
        print(f"{name:<20} IoU {iou:.4f}")
    print(f"mIoU {record['miou']:.4f} after {record['steps']} steps in {record['seconds']:.0f} s")
    print(json.dumps(record))


if __name__ == "__main__":
    main()
