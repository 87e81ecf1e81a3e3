"""Run the `cmtgeo` command line of a cmt-geo environment: find it, build its arguments, follow its JSON progress,
cancel it, and leave no partial outputs.

This module imports nothing from QGIS or Qt, so the QGIS task, the Processing algorithms and the tests share it.
The plugin never imports cmt-geo: cmt-geo runs in its own Python environment, reached only through `cmtgeo`.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

Tta = Literal["none", "flip", "d4"]
Status = Literal["success", "failed", "canceled"]

#: Devices `cmtgeo --device` takes.
DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
TTA_CHOICES = ("none", "flip", "d4")
#: Polygon formats QGIS reads that `cmtgeo vectorize` writes (GeoParquet is left out: QGIS 3.22 may not read it).
VECTOR_EXTENSIONS = ("gpkg", "shp", "geojson")
#: Exit status of a `cmtgeo` stopped by SIGTERM after removing its partial outputs.
TERMINATED_EXIT_CODE = 143
#: Seconds a terminated `cmtgeo` gets to clean up before it is killed.
TERMINATE_GRACE_SECONDS = 30.0

INSTALL_MESSAGE = (
    "cmt-geo was not found. Install it in its own Python 3.12 environment, e.g. "
    "`python3.12 -m venv ~/cmt-geo && ~/cmt-geo/bin/pip install cmt-geo` (Windows: py -3.12 -m venv "
    "%USERPROFILE%\\cmt-geo, then %USERPROFILE%\\cmt-geo\\Scripts\\pip install cmt-geo), then set that environment "
    "folder or its cmtgeo executable in Raster > cmt-geo > Settings (or put cmtgeo on PATH)."
)

#: Environment variables QGIS sets for its own Python and GDAL/PROJ that would break another Python environment.
_FOREIGN_ENVIRONMENT = (
    *("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP"),
    *("GDAL_DATA", "GDAL_DRIVER_PATH", "PROJ_LIB", "PROJ_DATA"),
)
#: Files GDAL or OGR may write beside an output.
_SIDECARS: dict[str, tuple[str, ...]] = {
    ".tif": (".aux.xml", ".ovr", ".msk"),
    ".tiff": (".aux.xml", ".ovr", ".msk"),
    ".gpkg": ("-wal", "-shm", "-journal"),
    ".shp": (".shx", ".dbf", ".prj", ".cpg", ".qix", ".sbn", ".sbx"),
}


class CmtGeoNotFoundError(FileNotFoundError):
    """No usable `cmtgeo` executable; the message says how to install and configure one."""


@dataclass(frozen=True)
class SegmentRequest:
    """What `cmtgeo predict` should do.

    Args:
        input: raster file to classify.
        checkpoint: cmt-geo checkpoint.
        output: class raster (GeoTIFF) to write.
        vector_output: also write class polygons here (.gpkg, .shp or .geojson), or None.
        tile_size: window side in pixels, or None for the model's training patch size.
        overlap: pixels shared by neighbouring windows, or None for a quarter tile.
        device: auto, cpu, mps, cuda or cuda:N.
        tta: test-time augmentation: none, flip or d4.
    """

    input: str
    checkpoint: str
    output: str
    vector_output: str | None = None
    tile_size: int | None = None
    overlap: int | None = None
    device: str = "auto"
    tta: Tta = "none"

    def __post_init__(self) -> None:
        if not DEVICE_PATTERN.match(self.device):
            raise ValueError(f"device {self.device!r} is not one of auto, cpu, mps, cuda or cuda:N (e.g. cuda:0)")
        if self.tta not in TTA_CHOICES:
            raise ValueError(f"tta {self.tta!r} is not one of {', '.join(TTA_CHOICES)}")
        _check_vector_path(self.vector_output)

    def arguments(self) -> list[str]:
        """The `cmtgeo` arguments, outputs replaced when they exist (QGIS asked the user already)."""
        arguments = ["predict", self.input, "-o", self.output, "--checkpoint", self.checkpoint]
        if self.vector_output:
            arguments += ["--vector", self.vector_output]
        if self.tile_size is not None:
            arguments += ["--tile-size", str(self.tile_size)]
        if self.overlap is not None:
            arguments += ["--overlap", str(self.overlap)]
        return [*arguments, "--device", self.device, "--tta", self.tta, "--overwrite", "--progress", "json"]

    def outputs(self) -> tuple[str, ...]:
        """The files this request writes."""
        return (self.output, self.vector_output) if self.vector_output else (self.output,)

    def phase_weights(self) -> tuple[float, ...]:
        """Share of the progress bar of each job `cmtgeo` reports: prediction, then polygons when asked for."""
        return (0.85, 0.15) if self.vector_output else (1.0,)


@dataclass(frozen=True)
class VectorizeRequest:
    """What `cmtgeo vectorize` should do.

    Args:
        input: class raster (one band of class ids, e.g. written by `cmtgeo predict`).
        output: polygons to write (.gpkg, .shp or .geojson).
        simplify: "auto" (1.5 pixels), "none", or a tolerance in CRS units.
        min_area: polygons smaller than this many m² merge into their longest-bordering neighbour.
    """

    input: str
    output: str
    simplify: str = "auto"
    min_area: float = 0.0

    def __post_init__(self) -> None:
        _check_vector_path(self.output)
        if self.simplify not in ("auto", "none"):
            try:
                tolerance = float(self.simplify)
            except ValueError:
                tolerance = -1.0
            if not tolerance >= 0:
                raise ValueError(f"simplify {self.simplify!r} is not auto, none or a tolerance >= 0 in CRS units")
        if not self.min_area >= 0:
            raise ValueError(f"min_area {self.min_area} must be a number of m² >= 0")

    def arguments(self) -> list[str]:
        """The `cmtgeo` arguments, the output replaced when it exists."""
        options = ["--simplify", self.simplify, "--min-area", repr(float(self.min_area))]
        return ["vectorize", self.input, "-o", self.output, *options, "--overwrite", "--progress", "json"]

    def outputs(self) -> tuple[str, ...]:
        """The files this request writes."""
        return (self.output,)

    def phase_weights(self) -> tuple[float, ...]:
        """One job: the polygons."""
        return (1.0,)


def _check_vector_path(path: str | None) -> None:
    if path and Path(path).suffix.lower().lstrip(".") not in VECTOR_EXTENSIONS:
        raise ValueError(
            f"vector output {path!r} must end in one of {', '.join('.' + e for e in VECTOR_EXTENSIONS)} "
            "(GeoPackage is the default)"
        )


@dataclass(frozen=True)
class RunResult:
    """How a `cmtgeo` run ended.

    Attributes:
        status: success, failed or canceled.
        message: one line for the user: the CLI's error, or what happened.
        log: everything the run printed (stderr and the non-progress lines of stdout).
        outputs: the files written (empty unless it succeeded).
        exit_code: the process exit status (None when it never started).
    """

    status: Status
    message: str
    log: str
    outputs: tuple[str, ...] = ()
    exit_code: int | None = None

    @property
    def ok(self) -> bool:
        """True when the run succeeded."""
        return self.status == "success"


def resolve_executable(configured: str | None = None) -> str:
    """The `cmtgeo` to run: the configured executable or environment folder, else the one on PATH.

    Args:
        configured: a `cmtgeo` executable, or a Python environment folder holding bin/cmtgeo
            (Scripts\\cmtgeo.exe on Windows); empty or None to search PATH.

    Raises:
        CmtGeoNotFoundError: nothing usable there; the message names the path and how to install cmt-geo.
    """
    if configured:
        path = Path(configured).expanduser()
        candidates = [path / "bin" / "cmtgeo", path / "Scripts" / "cmtgeo.exe", path / "cmtgeo"]
        for candidate in candidates if path.is_dir() else [path]:
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
        raise CmtGeoNotFoundError(f"{configured} is not cmtgeo nor an environment with it. {INSTALL_MESSAGE}")
    found = shutil.which("cmtgeo")
    if found is None:
        raise CmtGeoNotFoundError(INSTALL_MESSAGE)
    return found


def child_environment() -> dict[str, str]:
    """The environment for `cmtgeo`: QGIS's, without the variables that point at QGIS's own Python, GDAL and PROJ."""
    environment = {key: value for key, value in os.environ.items() if key not in _FOREIGN_ENVIRONMENT}
    environment["PYTHONUNBUFFERED"] = "1"
    environment["PYTHONIOENCODING"] = "utf-8"
    return environment


def _popen_options() -> dict[str, object]:
    """No console window on Windows; elsewhere a session of its own (a Ctrl-C in QGIS's terminal stays there)."""
    if sys.platform == "win32":
        return {"creationflags": getattr(subprocess, "CREATE_NO_WINDOW", 0)}
    return {"start_new_session": True}


def run_quick(executable: str, arguments: list[str], timeout: float = 120.0) -> str:
    """Run a short `cmtgeo` command (no shell) and return its standard output.

    Raises:
        RuntimeError: it failed; the message is the CLI's one-line error.
        CmtGeoNotFoundError: the executable cannot be started.
    """
    try:
        completed = subprocess.run(  # a list of arguments, never a shell
            [executable, *arguments],
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=timeout,
            env=child_environment(),
            **_popen_options(),  # type: ignore[arg-type]
        )
    except OSError as error:
        raise CmtGeoNotFoundError(f"cannot start {executable} ({error.strerror or error}). {INSTALL_MESSAGE}") from None
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{executable} {' '.join(arguments)} did not answer within {timeout:.0f} s") from None
    if completed.returncode != 0:
        raise RuntimeError(error_line(completed.stderr, completed.returncode))
    return completed.stdout


def cmtgeo_version(executable: str) -> str:
    """What `cmtgeo --version` prints, e.g. "cmtgeo 0.1.0"."""
    return run_quick(executable, ["--version"], timeout=60.0).strip()


def checkpoint_info(executable: str, checkpoint: str, raster: str | None = None) -> dict[str, object]:
    """`cmtgeo info CHECKPOINT [--input RASTER] --json`: the model card and, with a raster, its band mapping."""
    arguments = ["info", checkpoint, "--json"] + (["--input", raster] if raster else [])
    return json.loads(run_quick(executable, arguments))  # type: ignore[no-any-return]


def error_line(stderr: str, exit_code: int | None) -> str:
    """The CLI's one-line error ("Error: ..." on stderr), else its last line, else the exit status."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("Error: "):
            return line[len("Error: ") :]
    if lines:
        return lines[-1]
    return f"cmtgeo stopped with exit status {exit_code} without a message"


class _ProgressPhases:
    """Turns the JSON progress lines of consecutive jobs into one overall fraction.

    A new job starts when `total` changes or `done` goes back; each job fills its share of the bar.
    """

    def __init__(self, weights: tuple[float, ...]) -> None:
        self.weights = weights
        self.phase = 0
        self.last: tuple[int, int | None] | None = None

    def update(self, record: dict[str, object]) -> float | None:
        done, total, fraction = record.get("done"), record.get("total"), record.get("fraction")
        if not isinstance(done, int):
            return None
        if self.last is not None and (total != self.last[1] or done < self.last[0]):
            self.phase = min(self.phase + 1, len(self.weights) - 1)
        self.last = (done, total if isinstance(total, int) else None)
        if not isinstance(fraction, (int, float)):
            return None
        return sum(self.weights[: self.phase]) + self.weights[self.phase] * float(fraction)


def _progress_record(line: str) -> dict[str, object | None]:
    """The JSON progress record a line holds (cmt_geo.progress.JsonLinesProgress), or None."""
    if not line.startswith("{"):
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) and "done" in record else None


@dataclass
class _Streams:
    """Lines of both pipes, in arrival order, read by one thread per pipe."""

    lines: queue.Queue[tuple[str, str | None]] = field(default_factory=queue.Queue)
    open_streams: int = 0

    def follow(self, name: str, stream: object) -> None:
        self.open_streams += 1

        def read() -> None:
            for line in stream:  # type: ignore[attr-defined]
                self.lines.put((name, line.rstrip("\r\n")))
            self.lines.put((name, None))

        threading.Thread(target=read, name=f"cmtgeo-{name}", daemon=True).start()


def run_cmtgeo(
    executable: str,
    request: SegmentRequest | VectorizeRequest,
    *,
    on_progress: Callable[[float, str], None] | None = None,
    on_log: Callable[[str], None] | None = None,
    is_canceled: Callable[[], bool] = lambda: False,
    poll_seconds: float = 0.1,
) -> RunResult:
    """Run `cmtgeo` for `request` (no shell), reporting progress and log lines until it ends or is canceled.

    On cancel the process gets SIGTERM (it removes its staging files and exits 143) and is killed if it has not
    stopped after `TERMINATE_GRACE_SECONDS`. After a cancel or a failure, the outputs this run created (and their
    sidecars and any staging files of the process) are removed, so nothing partial is left; outputs that existed
    before are never touched by the plugin.

    Args:
        executable: the `cmtgeo` to run (see `resolve_executable`).
        request: what to run.
        on_progress: called with (overall fraction 0-1, message) for each progress line.
        on_log: called with every other line the process prints (stderr and stdout).
        is_canceled: polled every `poll_seconds`; True stops the process.
        poll_seconds: how often to look at `is_canceled`.
    """
    outputs = request.outputs()
    existed = {path: _owned_files(Path(path)) for path in outputs}
    command = [executable, *request.arguments()]
    log: list[str] = []

    def record_log(line: str) -> None:
        log.append(line)
        if on_log is not None:
            on_log(line)

    record_log("$ " + " ".join(command))
    try:
        process = subprocess.Popen(  # a list of arguments, never a shell
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            env=child_environment(),
            **_popen_options(),  # type: ignore[arg-type]
        )
    except OSError as error:
        message = f"cannot start {executable} ({error.strerror or error}). " + INSTALL_MESSAGE
        record_log(message)
        return RunResult("failed", message, "\n".join(log))
    streams = _Streams()
    streams.follow("stdout", process.stdout)
    streams.follow("stderr", process.stderr)
    phases = _ProgressPhases(request.phase_weights())
    stderr: list[str] = []
    canceled = False
    deadline: float | None = None
    while streams.open_streams or process.poll() is None:
        if not canceled and is_canceled():
            canceled = True
            record_log("canceled: stopping cmtgeo")
            process.terminate()
            deadline = time.monotonic() + TERMINATE_GRACE_SECONDS
        if deadline is not None and time.monotonic() > deadline and process.poll() is None:
            record_log(f"cmtgeo did not stop within {TERMINATE_GRACE_SECONDS:.0f} s: killing it")
            process.kill()
            deadline = None
        try:
            name, line = streams.lines.get(timeout=poll_seconds)
        except queue.Empty:
            continue
        if line is None:
            streams.open_streams -= 1
            continue
        record = _progress_record(line) if name == "stdout" else None
        if record is None:
            if name == "stderr":
                stderr.append(line)
            record_log(line)
        elif on_progress is not None:
            fraction = phases.update(record)
            if fraction is not None:
                on_progress(fraction, str(record.get("message") or ""))
    exit_code = process.wait()
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()
    if exit_code == 0 and not canceled:
        return RunResult("success", "", "\n".join(log), outputs, exit_code)
    _remove_new_outputs(existed, process.pid)
    if canceled:
        return RunResult("canceled", "canceled; no outputs were left", "\n".join(log), (), exit_code)
    message = error_line("\n".join(stderr), exit_code)
    return RunResult("failed", message, "\n".join(log), (), exit_code)


def _owned_files(path: Path) -> set:
    """`path` and its sidecars that exist now."""
    suffix = path.suffix.lower()
    if suffix == ".shp":
        candidates = [path, *(path.with_suffix(extra) for extra in _SIDECARS[".shp"])]
    else:
        candidates = [path, *(path.with_name(path.name + extra) for extra in _SIDECARS.get(suffix, ()))]
    return {candidate for candidate in candidates if candidate.exists()}


def _remove_new_outputs(existed: dict[str, set], pid: int) -> None:
    """Delete the files of each output that did not exist before the run, and the run's staging files.

    Staging files are named `.NAME.cmtgeo-staging-PID-...` (cmt_geo.io.outputs); the CLI removes them itself on
    SIGTERM, this catches a process that had to be killed.
    """
    for output, before in existed.items():
        path = Path(output)
        for created in _owned_files(path) - before:
            created.unlink()
        if path.parent.is_dir():
            for staging in path.parent.glob(f".{path.name}.cmtgeo-staging-{pid}-*"):
                if staging.is_dir():
                    shutil.rmtree(staging, ignore_errors=True)
                else:
                    staging.unlink()
