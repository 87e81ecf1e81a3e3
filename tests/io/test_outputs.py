"""Atomic outputs: complete or absent, never over the user's own files, the working directory or its parents."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cmt_geo.errors import ConfigError, OutputExistsError, OutputNotWritableError
from cmt_geo.io.outputs import MARKER, atomic_output, output_kind


def _touch(path: str | Path, *, fail: bool = False, **options: object) -> None:
    """Write an output through `atomic_output`; with `fail`, write half of it and raise, as a full disk would."""
    with atomic_output(path, **options) as staging:  # type: ignore[arg-type]
        if fail:
            staging.write_text("half")
            raise RuntimeError("disk full")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_file_appears_only_when_complete_and_is_never_replaced_silently(tmp_path: Path) -> None:
    target = tmp_path / "out" / "map.tif"
    with atomic_output(target) as staging:
        assert staging.parent == target.parent
        assert staging.suffix == ".tif"
        staging.write_text("first")
        assert not target.exists()
    assert target.read_text() == "first"
    with pytest.raises(OutputExistsError, match=r"map.tif exists; pass --overwrite \(overwrite=True\)"):
        _touch(target)
    with pytest.raises(RuntimeError, match="disk full"):
        _touch(target, overwrite=True, fail=True)
    assert target.read_text() == "first"
    assert sorted(p.name for p in target.parent.iterdir()) == ["map.tif"]


def test_outputs_get_the_usual_permissions(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        with atomic_output(tmp_path / "a.bin") as staging:
            staging.write_bytes(b"x")
        with atomic_output(tmp_path / "folder", folder_kind="test-output") as staging:
            (staging / "inner.txt").write_text("x")
        assert _mode(tmp_path / "a.bin") == 0o644
        assert _mode(tmp_path / "folder") == 0o755
        with atomic_output(tmp_path / "folder", overwrite=True, folder_kind="test-output") as staging:
            pass
        assert _mode(tmp_path / "folder") == 0o755
    finally:
        os.umask(previous)


@pytest.mark.parametrize("relative", [".", "..", "../.."])
def test_the_working_directory_and_its_parents_are_never_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, relative: str
) -> None:
    work = tmp_path / "a" / "b" / "work"
    work.mkdir(parents=True)
    (work / "notes.txt").write_text("mine")
    monkeypatch.chdir(work)
    with pytest.raises(ConfigError, match="current folder, one of its parents"):
        _touch(relative, overwrite=True, folder_kind="synthetic-dataset")
    assert (work / "notes.txt").read_text() == "mine"


def test_overwrite_replaces_only_a_folder_cmt_geo_wrote_as_the_same_kind(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.docx").write_text("years of work")
    with pytest.raises(OutputExistsError, match="holds files cmt-geo did not write"):
        _touch(mine, overwrite=True, folder_kind="synthetic-dataset")
    assert (mine / "thesis.docx").read_text() == "years of work"
    ours = tmp_path / "ours"
    with atomic_output(ours, folder_kind="synthetic-dataset") as staging:
        (staging / "old.txt").write_text("old")
    assert output_kind(ours) == "synthetic-dataset"
    with pytest.raises(OutputExistsError, match="a cmt-geo synthetic-dataset, not a prediction"):
        _touch(ours, overwrite=True, folder_kind="prediction")
    with atomic_output(ours, overwrite=True, folder_kind="synthetic-dataset") as staging:
        (staging / "new.txt").write_text("new")
    assert sorted(p.name for p in ours.iterdir()) == sorted([MARKER, "new.txt"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "ours"]


def test_an_unwritable_place_is_named_plainly(tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(OutputNotWritableError, match=r"cannot create the folder .*file.txt") as error:
        _touch(tmp_path / "file.txt" / "scene", folder_kind="synthetic-dataset")
    assert "staging" not in str(error.value)


def test_stale_staging_of_dead_processes_is_swept(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".scene.cmtgeo-staging-{int(dead.stdout)}-abc"
    stale.mkdir()
    (stale / "image.tif").write_bytes(b"partial")
    alive = tmp_path / f".scene.cmtgeo-staging-{os.getpid()}-xyz"  # this process: still running, kept
    alive.mkdir()
    with atomic_output(tmp_path / "scene", folder_kind="synthetic-dataset"):
        pass
    assert not stale.exists()
    assert alive.exists()


def test_sigterm_midway_removes_the_partial_output(tmp_path: Path) -> None:
    out = tmp_path / "scene"
    script = (
        "import sys; from cmt_geo_cli.main import main; "
        f"sys.argv = ['cmtgeo', 'data', 'synthetic', {str(out)!r}, '--size', '4096', '--progress', 'json']; main()"
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None
    process.stdout.readline()  # the first progress line: the staging folder exists and is being written
    staging = [p for p in tmp_path.iterdir() if ".cmtgeo-staging-" in p.name]
    assert staging, "no staging folder while writing"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    assert b"Terminated; partial outputs were removed" in stderr
    time.sleep(0.1)
    assert list(tmp_path.iterdir()) == []
