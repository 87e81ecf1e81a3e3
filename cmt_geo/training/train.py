"""`train`: a config in, a run folder out (resolved config, predict-ready checkpoints, resumable state, logs)."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch

from cmt_geo.card import IGNORE_INDEX, ModelCard, NormalizationStats, read_card
from cmt_geo.errors import CheckpointError, ConfigError
from cmt_geo.evaluation.protocols import protocol
from cmt_geo.io.outputs import atomic_output, output_kind
from cmt_geo.progress import NullProgress, Progress
from cmt_geo.training.callbacks import ProgressReport, RunCheckpoints, RunFolder, StopRequest, StopTraining
from cmt_geo.training.config import TrainConfig
from cmt_geo.training.data import SegmentationDataModule
from cmt_geo.training.datasets import describe_training_data, ground_sample_distance
from cmt_geo.training.losses import balanced_class_weights

if TYPE_CHECKING:
    from cmt_geo.data.base import TiledSegmentationDataset
    from cmt_geo.training.module import SegmentationTask

logger = logging.getLogger(__name__)

#: The kind of folder `train` writes (see `cmt_geo.io.outputs.atomic_output`).
OUTPUT_KIND = "training-run"


@dataclass(frozen=True)
class TrainResult:
    """What a training run left behind.

    Args:
        folder: the run folder.
        last: the checkpoint of the last weights (`cmtgeo predict --checkpoint`).
        best: the checkpoint with the best validation mIoU; None without validation.
        best_miou: that mIoU (the dataset protocol's classes); None without validation.
        steps: optimizer steps done.
        stopped: "finished", or "interrupted" (Ctrl-C, SIGTERM or a canceled progress; resume from `folder`).
        rank: this process's rank (0 alone, or in the process that writes the files).
    """

    folder: Path
    last: Path
    best: Path | None
    best_miou: float | None
    steps: int
    stopped: Literal["finished", "interrupted"]
    rank: int = 0


def _rank() -> int:
    """This process's global rank as a launcher (torchrun, SLURM, Lightning) set it; 0 before any launch."""
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if name in os.environ:
            return int(os.environ[name])
    return 0


def resume_folder(path: str | os.PathLike[str]) -> RunFolder:
    """The run folder a `resume` path names: the folder itself, or one of its checkpoints.

    Raises:
        CheckpointError: the folder holds no resumable training state.
    """
    given = Path(path).expanduser()
    folder = RunFolder(given.parent.parent if given.is_file() and given.parent.name == "checkpoints" else given)
    if not folder.state.is_file() or not folder.config.is_file():
        raise CheckpointError(
            f"{given} is not a training run with a resumable state ({folder.state} and {folder.config} are needed); "
            "give the run folder of an earlier `cmtgeo train` (train(..., resume=FOLDER))"
        )
    return folder


def _devices(config: TrainConfig) -> tuple[int | str, int]:
    """Devices per node and nodes: the launcher's when torchrun (or another launcher) started the processes."""
    trainer = config.trainer
    if trainer.devices == "auto" and "LOCAL_WORLD_SIZE" in os.environ and "WORLD_SIZE" in os.environ:
        local = int(os.environ["LOCAL_WORLD_SIZE"])
        return local, max(1, int(os.environ["WORLD_SIZE"]) // local)
    return trainer.devices, trainer.num_nodes


def _on_gpu(config: TrainConfig) -> bool:
    return config.trainer.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()


def _precision(config: TrainConfig) -> str:
    chosen = str(config.trainer.precision)
    if chosen != "auto":
        return chosen
    return "bf16-mixed" if _on_gpu(config) else "32"


def _loggers(config: TrainConfig, folder: RunFolder) -> list[Any]:
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    loggers: list[Any] = []
    if config.logging.csv:
        # a resumed run logs beside the earlier part (CSVLogger would delete its metrics.csv)
        version = "" if not (folder.logs / "metrics.csv").exists() else _next_version(folder.logs)
        loggers.append(CSVLogger(folder.logs, name="", version=version))
    wanted = config.logging.tensorboard
    installed = importlib.util.find_spec("tensorboard") is not None
    if wanted and not installed:
        raise ConfigError(
            "logging.tensorboard is true but tensorboard is not installed; pip install tensorboard, or set "
            "logging.tensorboard=null (--set logging.tensorboard=null) to write CSV logs only"
        )
    if wanted is not False and installed:
        loggers.append(TensorBoardLogger(folder.logs, name="tensorboard", version=""))
    return loggers


def _next_version(logs: Path) -> str:
    """The first free "resumed-N" log folder name."""
    count = 1
    while (logs / f"resumed-{count}").exists():
        count += 1
    return f"resumed-{count}"


def _build_model(
    config: TrainConfig, num_classes: int, in_channels: int, source: ModelCard | None, finetune: Path | None
) -> Any:
    """The model to train: a new one, or one from a checkpoint's architecture (a resumed run's, or the fine-tuned
    checkpoint's weights, its classifier replaced when the class count differs)."""
    from cmt_geo.models import create_model, load_checkpoint
    from cmt_geo.models.segmentation import RUNTIME_OPTIONS

    if source is None:
        return create_model(config.model.architecture, num_classes, in_channels, **config.model.options)
    if source.in_channels != in_channels:
        raise ConfigError(
            f"the checkpoint takes {source.in_channels} bands {list(source.band_names)} but the dataset gives "
            f"{in_channels}; fine-tune on data with the checkpoint's bands"
        )
    if source.architecture != config.model.architecture:
        logger.warning(
            "training the checkpoint's architecture %s, not model.architecture %s",
            source.architecture,
            config.model.architecture,
        )
    runtime = {k: v for k, v in config.model.options.items() if k in RUNTIME_OPTIONS and k != "pretrained_backbone"}
    model = create_model(source.architecture, num_classes, in_channels, **source.architecture_args, **runtime)
    if finetune is not None:
        trained, _ = load_checkpoint(finetune)
        own = model.state_dict()
        fitting = {k: v for k, v in trained.state_dict().items() if k in own and own[k].shape == v.shape}
        model.load_state_dict(fitting, strict=False)
        replaced = sorted(set(own) - set(fitting))
        if replaced:
            logger.info("fine-tuning from %s; new weights for %s", finetune, ", ".join(replaced[:4]))
    return model


def _prepare_folder(folder: RunFolder, overwrite: bool, resuming: bool) -> None:
    """Create the run folder (rank 0), refusing an existing output unless `overwrite` and cmt-geo wrote it."""
    if resuming:
        if output_kind(folder.path) != OUTPUT_KIND:
            raise ConfigError(f"{folder.path} is not a cmt-geo training run; resume from the folder `train` wrote")
        return
    with atomic_output(folder.path, overwrite=overwrite, folder_kind=OUTPUT_KIND) as staging:
        (staging / "checkpoints").mkdir()


def train(
    config: TrainConfig,
    output_dir: str | os.PathLike[str] | None = None,
    *,
    resume: str | os.PathLike[str] | None = None,
    finetune: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> TrainResult:
    """Train a model as `config` says and write a run folder (see `RunFolder`).

    The dataset is loaded (and checked) before any model is built. The first Ctrl-C or SIGTERM (or a canceled
    `progress`) stops after the current optimizer step and saves a resumable state; a second Ctrl-C aborts at once.

    Args:
        config: the training config (see `load_config`).
        output_dir: the run folder to create; with `resume`, the resumed run's folder (the default).
        resume: continue a run exactly where it stopped: its folder or one of its checkpoints.
        finetune: start from a cmt-geo checkpoint's weights, encoder frozen and learning rate lowered as the
            config's finetune section says (the checkpoint is recorded as finetune.checkpoint).
        overwrite: replace an earlier run folder (never a folder cmt-geo did not write).
        progress: told the optimizer steps done (with loss, learning rate and throughput) and each validation.

    Returns:
        Where the checkpoints are, the best validation mIoU, the steps done and how the run ended.

    Raises:
        DatasetNotFoundError: the dataset is missing.
        ConfigError: an invalid option, or a loss that became NaN or infinite (the message names the last good
            checkpoint).
        CheckpointError: `resume` is not a run folder, or `finetune` is not a cmt-geo checkpoint.
        OutputExistsError: `output_dir` exists and `overwrite` is False (or it is not a cmt-geo training run).
        CanceledError: a second Ctrl-C aborted the run.
    """
    import lightning.pytorch as pl

    if resume is not None and finetune is not None:
        raise ConfigError("resume continues a run and finetune starts a new one; pass only one of them")
    resumed = resume_folder(resume) if resume is not None else None
    if resumed is not None and output_dir is not None and Path(output_dir).resolve() != resumed.path.resolve():
        raise ConfigError(f"a resumed run continues in its own folder {resumed.path}; leave out the output folder")
    if output_dir is None and resumed is None:
        raise ConfigError("give the run folder to write: train(config, 'runs/NAME') (-o runs/NAME)")
    folder = resumed or RunFolder(Path(output_dir).expanduser())  # type: ignore[arg-type]
    if finetune is not None:
        read_card(finetune)  # a missing or invalid checkpoint fails before the data is read
        config = dataclasses.replace(
            config, finetune=dataclasses.replace(config.finetune, checkpoint=str(Path(finetune).resolve()))
        )
    config = _resolve_paths(config)
    trainer_config = config.trainer
    pl.seed_everything(trainer_config.seed, workers=True, verbose=False)
    data = SegmentationDataModule(config.data, trainer_config.seed)  # fails here when the dataset is missing
    source = read_card(resumed.last) if resumed is not None else None
    if source is None and config.finetune.checkpoint is not None:
        source = read_card(config.finetune.checkpoint)
    stats, class_weights = _statistics(config, data, source if resumed is not None else None)
    if _rank() == 0:
        _prepare_folder(folder, overwrite, resuming=resumed is not None)
        config.save(folder.config)  # a resumed run records the settings it continues with
    fresh_finetune = Path(config.finetune.checkpoint) if resumed is None and config.finetune.checkpoint else None
    task = _task(config, data.dataset, stats, class_weights, source, fresh_finetune)
    stop = StopRequest()
    checkpoints = RunCheckpoints(folder, task.card, config.checkpoint, stop)
    report = ProgressReport(progress or NullProgress(), stop, config.data.batch_size)
    stopped: Literal["finished", "interrupted"] = "finished"
    with stop.on_signals(), _quiet_lightning():
        trainer = _trainer(config, folder, [report, checkpoints], validate=data.val is not None)
        if resumed is not None:
            logger.info("continuing the run in %s", folder.path)
        try:
            trainer.fit(task, datamodule=data, ckpt_path=resumed.state if resumed else None, weights_only=True)
        except StopTraining:
            stopped = "interrupted"
            logger.warning(
                "stopped (%s) at step %d; resume with --resume %s", stop.reason, task.global_step, folder.path
            )
    best = folder.best if folder.best.is_file() else None
    return TrainResult(
        folder=folder.path,
        last=folder.last,
        best=best,
        best_miou=None if checkpoints.best_step is None else float(checkpoints.best_miou),
        steps=trainer.global_step,
        stopped=stopped,
        rank=trainer.global_rank,
    )


def _statistics(
    config: TrainConfig, data: SegmentationDataModule, resumed: ModelCard | None
) -> tuple[NormalizationStats, tuple[float, ...] | None]:
    """Band normalization (a resumed run's own) and the loss's class weights ("auto": from the pixel shares)."""
    section = config.data
    stats, class_pixels = describe_training_data(data.dataset, section.patch_size, section.normalization_samples)
    weights = config.loss.class_weights
    class_weights = balanced_class_weights(class_pixels) if weights == "auto" else weights
    if class_weights is not None:
        logger.info("class weights: %s", ", ".join(f"{w:.2f}" for w in class_weights))
    return (resumed.normalization if resumed is not None else stats), class_weights


def _task(
    config: TrainConfig,
    dataset: TiledSegmentationDataset,
    stats: NormalizationStats,
    class_weights: tuple[float, ...] | None,
    source: ModelCard | None,
    finetune: Path | None,
) -> SegmentationTask:
    """The Lightning module around a new (or the source checkpoint's) model and its card."""
    from cmt_geo.training.module import SegmentationTask

    torch.manual_seed(config.trainer.seed)
    net = _build_model(config, dataset.num_classes, len(dataset.band_names), source, finetune)
    card = ModelCard.for_model(
        net,
        class_names=dataset.classes,
        class_colors=dataset.colors,
        normalization=stats,
        patch_size=config.data.patch_size,
        ground_sample_distance=ground_sample_distance(config.data, dataset),
        ignore_index=IGNORE_INDEX,
    )
    finetuning = config.finetune.checkpoint is not None
    return SegmentationTask(
        net,
        card,
        config,
        class_weights=class_weights,
        mean_over=protocol(config.data.dataset).mean_over,
        lr=config.optim.lr * (config.finetune.lr_factor if finetuning else 1.0),
        freeze_encoder=finetuning and config.finetune.freeze_encoder,
    )


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Keep Lightning's start-up notes and its warnings about choices made on purpose (few loader workers, a
    short epoch) out of the output, unless cmt-geo logs at DEBUG level."""
    lightning = logging.getLogger("lightning.pytorch")
    level = lightning.level
    if not logger.isEnabledFor(logging.DEBUG):
        lightning.setLevel(logging.WARNING)
    with warnings.catch_warnings():
        quiet = (
            r".*does not have many workers.*",
            r".*log_every_n_steps.*",
            r".*LeafSpec.*",
            r".*sync_dist=True.*",
            r".*module\(s\) in eval mode.*",  # a frozen encoder, on purpose
        )
        for message in quiet:
            warnings.filterwarnings("ignore", message=message)
        try:
            yield
        finally:
            lightning.setLevel(level)


def _resolve_paths(config: TrainConfig) -> TrainConfig:
    """The config with the data paths made absolute, so the saved config (and a resume) works from anywhere."""
    data = config.data

    def absolute(path: str) -> str:
        return str(Path(path).expanduser().resolve())

    labels = None if data.labels is None else absolute(data.labels)
    return dataclasses.replace(config, data=dataclasses.replace(data, root=absolute(data.root), labels=labels))


def _trainer(config: TrainConfig, folder: RunFolder, callbacks: list[Any], validate: bool) -> Any:
    import lightning.pytorch as pl

    t = config.trainer
    devices, nodes = _devices(config)
    validation: dict[str, Any] = {"limit_val_batches": 1.0 if validate else 0, "num_sanity_val_steps": 0}
    if t.val_every_n_batches is not None:
        validation |= {"val_check_interval": t.val_every_n_batches, "check_val_every_n_epoch": None}
    else:
        validation["check_val_every_n_epoch"] = t.val_every_n_epochs
    return pl.Trainer(
        accelerator=t.accelerator,
        devices=devices,
        num_nodes=nodes,
        strategy=t.strategy,
        precision=_precision(config),  # type: ignore[arg-type]
        max_epochs=t.max_epochs if t.max_epochs is not None else -1,
        max_steps=t.max_steps,
        max_time=None if t.max_minutes is None else timedelta(minutes=t.max_minutes),
        accumulate_grad_batches=t.accumulate_grad_batches,
        gradient_clip_val=t.gradient_clip_val,
        gradient_clip_algorithm=t.gradient_clip_algorithm,
        # on a GPU, ops without a deterministic kernel (bilinear upsampling's backward) warn instead of failing
        deterministic=("warn" if _on_gpu(config) else True) if t.deterministic else False,
        benchmark=False if t.deterministic else None,
        logger=_loggers(config, folder) or False,
        log_every_n_steps=config.logging.every_n_steps,
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        use_distributed_sampler=False,
        default_root_dir=folder.path,
        **validation,
    )
