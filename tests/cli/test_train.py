"""`cmtgeo train`: a config and --set overrides through the CLI, a checkpoint `cmtgeo predict` loads, usage errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import rasterio
import yaml
from click.testing import CliRunner
from cmt_geo_cli.main import cmtgeo

from cmt_geo.data import write_synthetic
from cmt_geo.inference import predict_raster

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "synthetic.yaml"
FAST = [
    "model.architecture=unet",
    "data.patch_size=64",
    "data.batch_size=2",
    "data.samples_per_epoch=8",
    "data.val_block_size=128",
    "data.val_gap=16",
    "data.normalization_samples=8",
    "trainer.val_every_n_batches=2",
]


def test_train_then_predict_and_evaluate_through_the_command_line(tmp_path: Path) -> None:
    scene = write_synthetic(tmp_path / "scene", size=256, seed=1)
    sets = [item for value in [f"data.root={scene}", *FAST] for item in ("--set", value)]
    args = ["train", "--config", str(CONFIG), *sets, "--set", "trainer.max_steps=2", "-o", str(tmp_path / "run")]
    result = CliRunner().invoke(cmtgeo, [*args, "--devices", "1", "--progress", "json"])
    assert result.exit_code == 0, result.output
    assert f"trained 2 steps; wrote {tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}" in result.stdout
    assert '"done": 2, "total": 2' in result.stdout
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["trainer"]["max_steps"] == 2
    assert saved["data"]["root"] == str(scene.resolve())
    checkpoint = tmp_path / "run" / "checkpoints" / "best.ckpt"
    written = predict_raster(scene / "images" / "scene.tif", tmp_path / "classes.tif", checkpoint)
    with rasterio.open(written.classes) as classes:
        values = set(np.unique(classes.read(1)).tolist())
    assert values & set(range(6))
    assert values <= {*range(6), classes.nodata}  # the scene's no-data corner stays no-data
    predicted = CliRunner().invoke(
        cmtgeo,
        [
            "predict",
            str(scene / "images" / "scene.tif"),
            "-o",
            str(tmp_path / "c.tif"),
            "--checkpoint",
            str(checkpoint),
        ],
    )
    assert predicted.exit_code == 0, predicted.output
    evaluate = ["evaluate", "--checkpoint", str(checkpoint), "--config", str(tmp_path / "run" / "config.yaml")]
    scored = CliRunner().invoke(
        cmtgeo, [*evaluate, "--split", "val", "-o", str(tmp_path / "eval"), "--tile-size", "64", "--progress", "none"]
    )
    assert scored.exit_code == 0, scored.output
    assert re.search(r"^raster val, .*\n  mIoU \d\.\d{4}", scored.stdout, flags=re.MULTILINE), scored.stdout
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert report["split"] == "val"
    assert sum(map(sum, report["confusion_matrix"]["counts"])) > 0  # the validation blocks' pixels, scored
    both = CliRunner().invoke(cmtgeo, [*evaluate, "--dataset", "vaihingen", "-o", str(tmp_path / "e2")])
    assert both.exit_code == 2
    assert "not both" in both.stderr
    again = CliRunner().invoke(cmtgeo, args)
    assert again.exit_code == 1
    assert "--overwrite" in again.stderr
    resumed = CliRunner().invoke(cmtgeo, ["train", "--resume", str(tmp_path / "run"), "--set", "trainer.max_steps=3"])
    assert resumed.exit_code == 0, resumed.output
    assert "trained 3 steps" in resumed.stdout


def test_config_errors_are_one_line_and_usage_errors_exit_2(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(cmtgeo, ["train", "--config", str(CONFIG), "--set", "optim.lrr=1", "-o", str(tmp_path / "r")])
    assert bad.exit_code == 1
    assert "unknown key 'optim.lrr' (did you mean optim.lr?)" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    missing = runner.invoke(cmtgeo, ["train", "--config", str(CONFIG), "-o", str(tmp_path / "r")])
    assert missing.exit_code == 1
    assert "data.root" in missing.stderr
    assert "does not exist" in missing.stderr
    assert not (tmp_path / "r").exists()
    assert runner.invoke(cmtgeo, ["train", "-o", str(tmp_path / "r")]).exit_code == 2
    assert runner.invoke(cmtgeo, ["train", "--config", str(CONFIG)]).exit_code == 2
