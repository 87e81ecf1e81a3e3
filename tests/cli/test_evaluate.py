"""`cmtgeo evaluate`: the report and table, refusal without --overwrite, one-line errors for missing inputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from cmt_geo_cli.main import cmtgeo

from ..evaluation.conftest import write_vaihingen_case


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_vaihingen_case(tmp_path_factory.mktemp("cli-evaluate"))


def _args(checkpoint: Path, root: Path, out: Path) -> list[str]:
    return ["evaluate", "--checkpoint", str(checkpoint), "--dataset", "vaihingen", "--root", str(root), "-o", str(out)]


def test_evaluate_writes_the_report_and_prints_the_protocol(tmp_path: Path, case: tuple[Path, Path]) -> None:
    root, checkpoint = case
    out = tmp_path / "eval"
    args = [*_args(checkpoint, root, out), "--device", "cpu", "--tile-size", "96", "--tta", "flip"]
    result = CliRunner().invoke(cmtgeo, [*args, "--progress", "none"])
    assert result.exit_code == 0, result.output
    assert "mIoU and mean F1 over 5 of 6 classes (without clutter), OA over all 6" in result.stdout
    assert re.search(r"clutter .*\(not in the means\)", result.stdout)
    assert f"wrote {out}" in result.stdout
    report = json.loads((out / "metrics.json").read_text())
    assert report["settings"]["tta"] == "flip"
    assert (out / "confusion_matrix.png").is_file()
    assert (out / "vis" / "2.png").is_file()  # test tile area2
    again = CliRunner().invoke(cmtgeo, args)
    assert again.exit_code == 1
    assert "pass --overwrite" in again.stderr
    assert CliRunner().invoke(cmtgeo, [*args, "--overwrite", "--progress", "none"]).exit_code == 0


def test_missing_checkpoint_is_a_usage_error_and_missing_dataset_one_line(
    tmp_path: Path, case: tuple[Path, Path]
) -> None:
    root, checkpoint = case
    missing = CliRunner().invoke(cmtgeo, _args(tmp_path / "none.ckpt", root, tmp_path / "o"))
    assert missing.exit_code == 2
    assert "none.ckpt" in missing.stderr
    result = CliRunner().invoke(cmtgeo, _args(checkpoint, tmp_path / "nowhere", tmp_path / "o"))
    assert result.exit_code == 1
    assert "nowhere does not exist" in result.stderr
    assert "--root" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
    unknown = CliRunner().invoke(cmtgeo, [*_args(checkpoint, root, tmp_path / "o")[:4], "cityscapes"])
    assert unknown.exit_code == 2


def test_a_checkpoint_for_other_classes_is_a_one_line_error(
    tmp_path: Path, case: tuple[Path, Path], checkpoint: Path
) -> None:
    root, _ = case
    result = CliRunner().invoke(cmtgeo, _args(checkpoint, root, tmp_path / "o"))
    assert result.exit_code == 1
    assert "predicts 3 classes" in result.stderr
