"""`cmtgeo evaluate`: score a checkpoint on whole tiles of a dataset split with the dataset's benchmark protocol."""

from __future__ import annotations

import math
from pathlib import Path

import click

from cmt_geo.data.registry import DATASET_NAMES

from ..options import (
    config_options,
    device_option,
    make_progress,
    output_option,
    overwrite_option,
    progress_option,
    tiling_options,
)


def _score(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4f}"


@click.command()
@click.option(
    "--checkpoint", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Model."
)
@config_options(
    "A training config (or a run's config.yaml) whose data section names the dataset; instead of --dataset.",
    "Change a value of --config (repeatable), e.g. --set data.root=data/vaihingen.",
)
@click.option("--dataset", type=click.Choice(DATASET_NAMES), help="Dataset layout of --root (without --config).")
@click.option("--root", type=click.Path(path_type=Path), help="The dataset folder (with --dataset).")
@click.option(
    "--split",
    type=click.Choice(["test", "val", "train"]),
    default="test",
    show_default=True,
    help="Split to score (choose checkpoints on val, never on test).",
)
@output_option(help="Report folder: metrics.csv, metrics.json, confusion_matrix.png, vis/.")
@tiling_options
@click.option(
    "--vis-tiles", type=click.IntRange(min=0), default=8, show_default=True, help="Tiles drawn into vis/ panels."
)
@device_option
@overwrite_option
@progress_option
def evaluate(
    checkpoint: Path,
    config_path: Path | None,
    overrides: tuple[str, ...],
    dataset: str | None,
    root: Path | None,
    split: str,
    output: Path,
    tile_size: int | None,
    overlap: int | None,
    batch_size: int,
    tta: str,
    vis_tiles: int,
    device: str,
    overwrite: bool,
    progress_kind: str,
) -> None:
    """Score a checkpoint on whole tiles of a split, predicted with sliding windows as `cmtgeo predict` does.

    mIoU and mean F1 follow the dataset's protocol (ISPRS: 5 classes without clutter, on eroded labels; OA over
    all 6; UAVid 8 classes; LoveDA 7); per-class IoU, F1, precision, recall and the confusion matrix are always
    reported. Writes metrics.csv, metrics.json, confusion_matrix.png and vis/ (input | ground truth | prediction).

    \b
    $ cmtgeo evaluate --checkpoint best.ckpt --dataset vaihingen --root data/vaihingen -o eval/vaihingen --tta d4
    $ cmtgeo evaluate --checkpoint runs/synthetic/checkpoints/best.ckpt --config runs/synthetic/config.yaml \\
        --split val -o eval/synthetic
    """
    from cmt_geo.data.base import TiledSegmentationDataset
    from cmt_geo.evaluation import evaluate as run_evaluation
    from cmt_geo.inference import PredictOptions

    data: str | TiledSegmentationDataset
    if config_path is not None:
        if dataset is not None or root is not None:
            raise click.UsageError("give either --config or --dataset with --root, not both")
        from cmt_geo.training import build_dataset, load_config

        data = build_dataset(load_config(config_path, overrides).data, split)  # type: ignore[arg-type]
    elif overrides:
        raise click.UsageError("--set changes values of --config; give --config FILE")
    elif dataset is None or root is None:
        raise click.UsageError("give the data: --config FILE, or --dataset NAME with --root DIR")
    else:
        data = dataset

    options = PredictOptions(
        tile_size=tile_size,
        overlap=overlap,
        batch_size=batch_size,
        tta=tta,  # type: ignore[arg-type]
        device=device,
    )
    result = run_evaluation(
        checkpoint,
        data,
        root=root,
        split=split,  # type: ignore[arg-type]
        options=options,
        output_dir=output,
        overwrite=overwrite,
        vis_tiles=vis_tiles,
        progress=make_progress(progress_kind),
    )
    chosen = result.scores
    click.echo(f"{result.dataset} {result.split}, {result.protocol.describe(result.class_names)}:")
    click.echo(f"  mIoU {_score(chosen.miou)}  mean F1 {_score(chosen.mean_f1)}  OA {_score(chosen.oa)}")
    for row in chosen.per_class(result.class_names):
        marker = "" if row["in_mean"] else "  (not in the means)"
        click.echo(
            f"  {row['name']:<20} IoU {_score(row['iou'])}  F1 {_score(row['f1'])}  "
            f"precision {_score(row['precision'])}  recall {_score(row['recall'])}{marker}"
        )
    click.echo(f"wrote {output}")
