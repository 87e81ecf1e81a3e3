"""`cmtgeo train`: train a model from a YAML config into a run folder of predict-ready checkpoints and logs."""

from __future__ import annotations

import math
from pathlib import Path

import click

from ..options import config_options, make_progress, output_option, overwrite_option, progress_option


@click.command()
@config_options(
    "YAML training config (see configs/); with --resume, the run's own config.yaml by default.",
    "Change a config value (repeatable), e.g. --set trainer.max_steps=20 --set data.root=data/vaihingen.",
)
@output_option(required=False, help="Run folder to create: config.yaml, checkpoints/, logs/.")
@click.option(
    "--resume",
    type=click.Path(exists=True, path_type=Path),
    help="Continue a stopped run exactly, in its folder: the run folder or one of its checkpoints.",
)
@click.option(
    "--finetune",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Start from a checkpoint's weights, encoder frozen and learning rate lowered (config section finetune).",
)
@click.option("--devices", help="Devices per node: a number or auto [default: the config's trainer.devices].")
@click.option("--num-nodes", type=click.IntRange(min=1), help="Machines [default: the config's trainer.num_nodes].")
@overwrite_option
@progress_option
def train(
    config_path: Path | None,
    overrides: tuple[str, ...],
    output: Path | None,
    resume: Path | None,
    finetune: Path | None,
    devices: str | None,
    num_nodes: int | None,
    overwrite: bool,
    progress_kind: str,
) -> None:
    """Train a segmentation model as a YAML config says; checkpoints are ready for `cmtgeo predict`.

    The run folder gets config.yaml (the resolved config), checkpoints/last.ckpt and best.ckpt (best validation
    mIoU) and logs/metrics.csv. The first Ctrl-C stops after the current step with a resumable state (exit code
    130); --resume continues exactly. Several devices train with DDP; under torchrun or SLURM each process is one
    rank.

    \b
    $ cmtgeo data synthetic data/synthetic --size 1024
    $ cmtgeo train --config configs/synthetic.yaml -o runs/synthetic --set trainer.max_steps=200
    $ cmtgeo train --resume runs/synthetic
    $ torchrun --nproc-per-node 4 --no-python cmtgeo train --config configs/vaihingen.yaml -o runs/vaihingen
    """
    from cmt_geo.training import load_config
    from cmt_geo.training import train as run_training
    from cmt_geo.training.train import resume_folder

    if config_path is None and resume is None:
        raise click.UsageError("give --config FILE (or --resume RUN to continue a run with its own config)")
    if output is None and resume is None:
        raise click.UsageError("give the run folder to create with -o/--output, e.g. -o runs/synthetic")
    if resume is not None and finetune is not None:
        raise click.UsageError("--resume continues a run and --finetune starts one; pass only one")
    extra = [*overrides]
    if devices is not None:
        extra.append(f"trainer.devices={devices}")
    if num_nodes is not None:
        extra.append(f"trainer.num_nodes={num_nodes}")
    source = config_path if config_path is not None else resume_folder(resume).config  # type: ignore[arg-type]
    config = load_config(source, extra)
    result = run_training(
        config,
        output,
        resume=resume,
        finetune=finetune,
        overwrite=overwrite,
        progress=make_progress(progress_kind),
    )
    if result.rank != 0:
        return  # the process of rank 0 reports
    if result.stopped == "interrupted":
        click.echo(f"stopped at step {result.steps}; continue with: cmtgeo train --resume {result.folder}", err=True)
        raise click.exceptions.Exit(130)
    best = (
        "" if result.best_miou is None or math.isnan(result.best_miou) else f" (best val mIoU {result.best_miou:.4f})"
    )
    click.echo(
        f"trained {result.steps} steps; wrote {result.last}" + (f" and {result.best}{best}" if result.best else "")
    )
