"""`train`: predict-ready checkpoints, exact resume, clean stops, NaN guard, fine-tuning, refusals, DDP on CPU."""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from cmt_geo.card import IGNORE_INDEX, read_card
from cmt_geo.data import GridPatchSampler
from cmt_geo.errors import CheckpointError, ConfigError, DatasetNotFoundError, OutputExistsError
from cmt_geo.models import load_checkpoint
from cmt_geo.progress import NullProgress
from cmt_geo.training import TrainConfig, train
from cmt_geo.training.datasets import load_split
from cmt_geo.training.losses import SegmentationLoss


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)[0].state_dict()


def rows(path: Path) -> list[dict[str, str]]:
    with path.open() as stream:
        return list(csv.DictReader(stream))


class CancelAt(NullProgress):
    """Cancels once step `step` is reported."""

    def __init__(self, step: int) -> None:
        super().__init__()
        self.step = step

    def report(self, done: int, total: int | None, message: str = "") -> None:
        if done >= self.step and "loss" in message:
            self.cancel()


def test_train_writes_a_run_folder_whose_checkpoints_predict(
    tmp_path: Path, fast_config: Callable[..., TrainConfig]
) -> None:
    config = fast_config()
    result = train(config, tmp_path / "run")
    assert (result.stopped, result.steps) == ("finished", 4)
    assert result.best == tmp_path / "run" / "checkpoints" / "best.ckpt"
    assert result.best_miou is not None
    assert 0 <= result.best_miou <= 1
    card = read_card(result.last)
    assert card.class_names[4] == "car"
    assert card.patch_size == 64
    assert card.ground_sample_distance == pytest.approx(60 / 256)
    assert card.ignore_index == 255
    assert len(card.normalization.mean) == 4
    model, _ = load_checkpoint(result.best)
    assert model(torch.zeros(1, 4, 64, 64)).shape == (1, 6, 64, 64)
    logged = rows(tmp_path / "run" / "logs" / "metrics.csv")
    assert any(row["train/loss"] for row in logged)
    assert any(row["val/miou"] for row in logged)
    assert any(row["train/images_per_s"] for row in logged)
    assert TrainConfig.from_dict(__import__("yaml").safe_load((tmp_path / "run" / "config.yaml").read_text()))
    with pytest.raises(OutputExistsError, match="--overwrite"):
        train(config, tmp_path / "run")


@pytest.mark.slow
def test_resume_gives_the_weights_of_an_uninterrupted_run(
    tmp_path: Path, fast_config: Callable[..., TrainConfig]
) -> None:
    # 6 batches an epoch, gradients of 2 batches per step, auxiliary heads: stop after step 2, mid-epoch
    config = fast_config(
        "trainer.max_steps=5", "trainer.accumulate_grad_batches=2", "loss.deep_supervision=true", "data.val_fraction=0"
    )
    whole = train(config, tmp_path / "whole")
    stopped = train(config, tmp_path / "part", progress=CancelAt(2))
    assert (stopped.stopped, stopped.steps) == ("interrupted", 2)
    earlier = weights(stopped.last)
    resumed = train(config, resume=tmp_path / "part" / "checkpoints" / "last.ckpt")
    assert (resumed.stopped, resumed.steps) == ("finished", 5)
    expected, got = weights(whole.last), weights(resumed.last)
    assert all(torch.equal(expected[name], got[name]) for name in expected)
    assert not all(torch.equal(earlier[name], got[name]) for name in got)  # the stopped run really stopped early
    assert (tmp_path / "part" / "logs" / "resumed-1" / "metrics.csv").is_file()


def test_ctrl_c_stops_after_the_step_with_a_resumable_state(
    tmp_path: Path, fast_config: Callable[..., TrainConfig]
) -> None:
    class CtrlC(NullProgress):
        def report(self, done: int, total: int | None, message: str = "") -> None:
            if done == 1 and "loss" in message:
                os.kill(os.getpid(), signal.SIGINT)

    result = train(fast_config("data.val_fraction=0"), tmp_path / "run", progress=CtrlC())
    assert (result.stopped, result.steps) == ("interrupted", 1)
    assert (tmp_path / "run" / "checkpoints" / "training_state.ckpt").is_file()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_nan_loss_stops_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, fast_config: Callable[..., TrainConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    forward = SegmentationLoss.forward

    def diverging(self: SegmentationLoss, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        loss = forward(self, logits, target)
        return loss * float("nan") if len(calls) > 2 else loss

    monkeypatch.setattr(SegmentationLoss, "forward", diverging)
    config = fast_config("data.val_fraction=0", "checkpoint.every_n_steps=1")
    with pytest.raises(ConfigError, match=r"loss became nan at step 2 .*last good checkpoint is .*last.ckpt") as error:
        train(config, tmp_path / "run")
    assert "trainer.gradient_clip_val" in str(error.value)
    assert all(torch.isfinite(w).all() for w in weights(tmp_path / "run" / "checkpoints" / "last.ckpt").values())


def test_finetune_freezes_the_encoder_and_replaces_a_classifier_of_another_size(
    tmp_path: Path, fast_config: Callable[..., TrainConfig]
) -> None:
    source = train(fast_config("data.val_fraction=0", "trainer.max_steps=1"), tmp_path / "source")
    seven = fast_config(
        "data.val_fraction=0",
        "data.classes=[a, b, c, d, e, f, g]",
        "data.colors=null",
        "trainer.max_steps=2",
        "finetune.lr_factor=0.5",
    )
    tuned = train(seven, tmp_path / "tuned", finetune=source.last)
    before, after = weights(source.last), weights(tuned.last)
    encoder = [name for name in before if name.startswith("encoder.") and before[name].is_floating_point()]
    assert encoder
    assert all(torch.equal(before[name], after[name]) for name in encoder)  # weights and batch-norm statistics
    assert read_card(tuned.last).num_classes == 7
    saved = (tmp_path / "tuned" / "config.yaml").read_text()
    assert f"checkpoint: {source.last.resolve()}" in saved
    first_lr = float(
        next(row for row in rows(tmp_path / "tuned" / "logs" / "metrics.csv") if row["train/lr"])["train/lr"]
    )
    assert first_lr <= seven.optim.lr * 0.5 * (1 + 1e-6)  # logged in float32


def test_refusals_come_before_any_model_is_built(
    tmp_path: Path, fast_config: Callable[..., TrainConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was built")

    monkeypatch.setattr("cmt_geo.models.create_model", no_model)
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        train(fast_config("data.root=/no/such/data"), tmp_path / "run")
    assert not (tmp_path / "run").exists()
    with pytest.raises(CheckpointError, match="not a training run"):
        train(fast_config(), resume=tmp_path)
    with pytest.raises(ConfigError, match="give the run folder"):
        train(fast_config())
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="files cmt-geo did not write"):
        train(fast_config(), tmp_path / "mine", overwrite=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_two_process_ddp_trains_syncs_validation_and_writes_one_checkpoint(
    tmp_path: Path, fast_config: Callable[..., TrainConfig]
) -> None:
    config = fast_config(
        "trainer.max_steps=2", "trainer.val_every_n_batches=2", "data.val_fraction=0.25", "data.patch_size=48"
    )
    config.save(tmp_path / "config.yaml")
    script = tmp_path / "train_ddp.py"
    script.write_text(
        "import os, sys\n"
        "from cmt_geo.training import load_config, train\n"
        "r = train(load_config(sys.argv[1]), sys.argv[2])\n"
        "print('RESULT', os.environ['RANK'], r.steps, r.best_miou)\n"
    )
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port"]
    command += [str(_free_port()), str(script), str(tmp_path / "config.yaml"), str(tmp_path / "run")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = sorted(line.split()[1:] for line in done.stdout.splitlines() if line.startswith("RESULT"))
    assert [r[:2] for r in results] == [["0", "2"], ["1", "2"]]
    assert results[0][2] == results[1][2]  # both ranks saw the same, all-reduced, validation score
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == [
        "best.ckpt",
        "last.ckpt",
        "training_state.ckpt",
    ]
    logged = [row for row in rows(tmp_path / "run" / "logs" / "metrics.csv") if row["val/pixels"]]
    # every validation pixel counted exactly once over both ranks (the ranks' grids are padded to equal lengths)
    val = load_split(config.data, "val")
    assert val.blocks is not None
    windows = GridPatchSampler(val.dataset, 48, rank=0, world_size=1, within=val.blocks.boxes)
    labelled = sum(int((val.dataset[window]["mask"] != IGNORE_INDEX).sum()) for window in windows)
    assert len(windows) % 2 == 1  # so that one rank's share was padded with a repeat
    assert float(logged[-1]["val/pixels"]) == labelled > 0
    assert np.isfinite(float(logged[-1]["val/miou"]))
