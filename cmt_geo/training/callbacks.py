"""Lightning callbacks of a training run: checkpoints (last, best, resumable state), progress, and stopping cleanly."""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

from cmt_geo.card import ModelCard
from cmt_geo.errors import CanceledError
from cmt_geo.io.outputs import atomic_output
from cmt_geo.models.checkpoint import save_checkpoint
from cmt_geo.progress import Progress
from cmt_geo.training.config import CheckpointSection

if TYPE_CHECKING:
    from cmt_geo.training.module import SegmentationTask

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunFolder:
    """The files of a training run.

    Layout: `config.yaml` (the resolved config), `checkpoints/last.ckpt` and `checkpoints/best.ckpt` (cmt-geo
    checkpoints, ready for `cmtgeo predict`), `checkpoints/training_state.ckpt` (what `--resume` continues from:
    weights, optimizer, schedule, loops, data position), `logs/` (metrics.csv, TensorBoard events).
    """

    path: Path

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last.ckpt"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.ckpt"

    @property
    def state(self) -> Path:
        return self.checkpoints / "training_state.ckpt"

    @property
    def logs(self) -> Path:
        return self.path / "logs"


class StopTraining(Exception):  # noqa: N818 (control flow inside `train`, never raised to callers)
    """Raised on every rank once a resumable checkpoint is saved after a stop request; `train` catches it."""


class StopRequest:
    """A request to stop at the next optimizer step and save a resumable checkpoint: Ctrl-C, SIGTERM, or a
    canceled `Progress`."""

    def __init__(self) -> None:
        self.reason: str | None = None

    @property
    def requested(self) -> bool:
        """True once a stop was requested."""
        return self.reason is not None

    def request(self, reason: str) -> None:
        """Ask to stop (the first reason is kept)."""
        if self.reason is None:
            self.reason = reason

    @contextlib.contextmanager
    def on_signals(self) -> Iterator[None]:
        """Within the block, the first Ctrl-C or SIGTERM requests a stop; a second Ctrl-C aborts at once
        (CanceledError) without saving. Signals are left alone outside the main thread."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: object) -> None:
            if self.requested and signum == signal.SIGINT:
                raise CanceledError("training aborted by a second Ctrl-C; the last saved checkpoint is kept")
            self.request("Ctrl-C" if signum == signal.SIGINT else "SIGTERM")
            logger.warning("%s: stopping after this step and saving a resumable checkpoint", self.reason)

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)


def _step_done(trainer: pl.Trainer, batch_idx: int) -> bool:
    """Whether the batch just trained ended an optimizer step (not in the middle of gradient accumulation)."""
    loop = trainer.fit_loop.epoch_loop
    return (batch_idx + 1) % trainer.accumulate_grad_batches == 0 or loop.batch_progress.is_last_batch


class RunCheckpoints(Callback):
    """Writes `last.ckpt` and the training state after each validation, every `every_n_steps` steps, at the end and
    on a stop request; `best.ckpt` when the validation mIoU beats every earlier one. Only rank 0 writes.

    Args:
        folder: the run folder.
        card: the model card written into every checkpoint.
        config: the checkpoint section.
        stop: the stop request checked after every optimizer step.
    """

    def __init__(self, folder: RunFolder, card: ModelCard, config: CheckpointSection, stop: StopRequest) -> None:
        self.folder, self.card, self.config, self.stop = folder, card, config, stop
        self.best_miou = -math.inf
        self.best_step: int | None = None
        self.saved_step: int | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"best_miou": self.best_miou, "best_step": self.best_step}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best_miou, self.best_step = state_dict["best_miou"], state_dict["best_step"]

    def _save_weights(self, trainer: pl.Trainer, module: pl.LightningModule, path: Path) -> None:
        if trainer.is_global_zero:
            save_checkpoint(cast("SegmentationTask", module).net, path, self.card, overwrite=True)

    def save_last(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        """Write last.ckpt and the resumable training state (every rank must call this)."""
        self._save_weights(trainer, module, self.folder.last)
        target = self.folder.state
        writing = atomic_output(target, overwrite=True) if trainer.is_global_zero else contextlib.nullcontext(target)
        with writing as path:
            trainer.save_checkpoint(path, weights_only=False)
        self.saved_step = trainer.global_step
        cast("SegmentationTask", module).last_checkpoint = str(self.folder.last)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not _step_done(trainer, batch_idx):
            return
        stop = self.stop.requested
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if stop:
            self.stop.request("another process stopped")
            self.save_last(trainer, pl_module)
            raise StopTraining
        every = self.config.every_n_steps
        if every is not None and trainer.global_step % every == 0:
            self.save_last(trainer, pl_module)
        if 0 < trainer.max_steps <= trainer.global_step:
            trainer.should_stop = True  # so that the last step is validated

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        scores = getattr(pl_module, "val_scores", None)
        if trainer.sanity_checking or scores is None:
            return
        if self.config.save_best and math.isfinite(scores.miou) and scores.miou > self.best_miou:
            self.best_miou, self.best_step = scores.miou, trainer.global_step
            self._save_weights(trainer, pl_module, self.folder.best)
        self.save_last(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.saved_step != trainer.global_step:
            self.save_last(trainer, pl_module)


class ProgressReport(Callback):
    """Reports each optimizer step (loss, learning rate, images per second) and each validation to a `Progress`,
    logs the throughput, and turns a canceled progress into a stop request.

    Args:
        progress: where to report.
        stop: the stop request a cancel sets.
        batch_size: patches per batch and process.
    """

    def __init__(self, progress: Progress, stop: StopRequest, batch_size: int) -> None:
        self.progress, self.stop, self.batch_size = progress, stop, batch_size
        self._since = time.monotonic()
        self._images = 0
        self.images_per_second = math.nan
        self._total: int | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._since, self._images = time.monotonic(), 0
        total = trainer.estimated_stepping_batches
        self._total = int(total) if math.isfinite(total) else None

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._images += self.batch_size * trainer.world_size
        if _step_done(trainer, batch_idx):
            self._report_step(trainer, pl_module, outputs)
        if self.progress.is_canceled():
            self.stop.request("canceled")

    def _report_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any) -> None:
        now = time.monotonic()
        self.images_per_second = self._images / max(now - self._since, 1e-9)
        self._since, self._images = now, 0
        pl_module.log("train/images_per_s", self.images_per_second)
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        message = f"epoch {trainer.current_epoch} loss {float(loss):.4f} lr {lr:.2e} {self.images_per_second:.1f} img/s"
        if trainer.is_global_zero:
            self.progress.report(trainer.global_step, self._total, message)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        scores = getattr(pl_module, "val_scores", None)
        if trainer.sanity_checking or scores is None:
            return
        if not trainer.is_global_zero:
            return
        message = f"validation mIoU {scores.miou:.4f} mean F1 {scores.mean_f1:.4f} OA {scores.oa:.4f}"
        self.progress.report(trainer.global_step, self._total, message)
        logger.info("step %d: %s", trainer.global_step, message)
