"""Atomic outputs: every file or folder cmt-geo writes appears complete or not at all, and is never replaced silently.

A writer asks `atomic_output` for a staging path beside the destination, writes there, and the staging path is
renamed over the destination only when the writer finished. An error, Ctrl-C or SIGTERM (see
`terminate_on_sigterm`) removes the staging path instead. Folders carry a marker file naming what wrote them, so
`overwrite=True` replaces only a folder cmt-geo wrote with the same kind, never the working directory, one of its
parents, or a folder of the user's own files. Outputs get the usual permissions (0666 / 0777 less the umask).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

from cmt_geo._version import __version__
from cmt_geo.errors import ConfigError, OutputExistsError, OutputNotWritableError

#: The file inside every folder cmt-geo writes; it names the kind of output (e.g. "synthetic-dataset").
MARKER = ".cmtgeo-output.json"
_STAGING = "cmtgeo-staging"
_STAGING_NAME = re.compile(rf"^\.(?P<name>.+)\.{re.escape(_STAGING)}-(?P<pid>\d+)-")


def current_umask() -> int:
    """The process umask (read without changing it where /proc allows)."""
    with contextlib.suppress(OSError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _staging_prefix(destination: Path) -> str:
    return f".{destination.name}.{_STAGING}-{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_staging(destination: Path) -> list[Path]:
    """Remove staging files and folders of `destination` left by cmt-geo processes that no longer run.

    Returns:
        The paths removed.
    """
    removed: list[Path] = []
    if not destination.parent.is_dir():
        return removed
    for entry in destination.parent.iterdir():
        match = _STAGING_NAME.match(entry.name)
        if match is None or match["name"] != destination.name or _pid_alive(int(match["pid"])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def _refuse_enclosing(destination: Path) -> None:
    """Refuse a destination that is the working directory, one of its parents, the home folder or a root."""
    resolved = destination.resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents or resolved == Path.home().resolve() or resolved.parent == resolved:
        raise ConfigError(
            f"{destination} is the current folder, one of its parents or your home folder; cmt-geo never writes "
            "over it: give a new folder name, e.g. ./demo"
        )


def _check_folder_replaceable(destination: Path, kind: str, overwrite: bool) -> None:
    if destination.is_symlink() or (destination.exists() and not destination.is_dir()):
        raise OutputExistsError(f"{destination} exists and is not a folder; choose another output folder")
    if not destination.exists() or not any(destination.iterdir()):
        return
    if not overwrite:
        raise OutputExistsError(
            f"{destination} exists and is not empty; pass --overwrite (overwrite=True) to replace an earlier "
            "cmt-geo output, or choose another folder"
        )
    written = output_kind(destination)
    if written != kind:
        what = "files cmt-geo did not write" if written is None else f"a cmt-geo {written}, not a {kind}"
        raise OutputExistsError(
            f"{destination} holds {what}; --overwrite only replaces an earlier {kind} written by cmt-geo: choose "
            "a new folder or empty this one yourself"
        )


def output_kind(folder: Path) -> str | None:
    """The kind of output cmt-geo wrote in `folder` (from its marker), or None when cmt-geo did not write it."""
    try:
        return str(json.loads((folder / MARKER).read_text())["kind"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _writable_parent(destination: Path) -> None:
    """Create the destination's parent folders and check that cmt-geo may write there."""
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputNotWritableError(
            f"cannot create the folder {destination.parent} ({error.strerror}); choose another output location"
        ) from None
    if not os.access(destination.parent, os.W_OK | os.X_OK):
        raise OutputNotWritableError(
            f"cannot write in {destination.parent} (permission denied); choose another output location"
        )


@contextlib.contextmanager
def atomic_output(
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    folder_kind: str | None = None,
) -> Iterator[Path]:
    """A staging path to write an output to; it replaces `path` only when the block finishes without error.

    Args:
        path: the file (or, with `folder_kind`, the folder) to write.
        overwrite: replace an existing output. A file is replaced; a folder only when cmt-geo wrote it as the
            same `folder_kind`.
        folder_kind: write a folder instead of a file, marked as this kind of output (e.g. "synthetic-dataset").

    Yields:
        The staging path: a file path with the destination's suffix (writers that pick a driver by suffix work),
        or an empty folder.

    Raises:
        OutputExistsError: the output exists and `overwrite` is False, or a folder is not a replaceable output.
        OutputNotWritableError: the destination's folder cannot be created or written.
        ConfigError: a folder destination that is the working directory, one of its parents or the home folder.
    """
    destination = Path(path).expanduser()
    if folder_kind is None:
        if destination.is_dir():
            raise OutputExistsError(f"{destination} is a folder; give a file name for the output")
        if destination.exists() and not overwrite:
            raise OutputExistsError(
                f"{destination} exists; pass --overwrite (overwrite=True) to replace it, or choose another name"
            )
    else:
        _refuse_enclosing(destination)
        _check_folder_replaceable(destination, folder_kind, overwrite)
    _writable_parent(destination)
    sweep_stale_staging(destination)
    mask = current_umask()
    try:
        if folder_kind is None:
            handle, name = tempfile.mkstemp(
                prefix=_staging_prefix(destination), suffix=destination.suffix, dir=destination.parent
            )
            os.close(handle)
            staging = Path(name)
            os.chmod(staging, 0o666 & ~mask)
        else:
            staging = Path(tempfile.mkdtemp(prefix=_staging_prefix(destination), dir=destination.parent))
            os.chmod(staging, 0o777 & ~mask)
    except PermissionError:
        raise OutputNotWritableError(
            f"cannot write in {destination.parent} (permission denied); choose another output location"
        ) from None
    try:
        yield staging
        if folder_kind is None:
            os.chmod(staging, 0o666 & ~mask)  # again: a writer may have replaced the staging file with its own
            os.replace(staging, destination)
        else:
            marker = {"kind": folder_kind, "cmt_geo_version": __version__}
            (staging / MARKER).write_text(json.dumps(marker) + "\n")
            _swap_folder(staging, destination)
    except BaseException:
        if staging.is_dir():
            shutil.rmtree(staging, ignore_errors=True)
        else:
            staging.unlink(missing_ok=True)
        raise


def _swap_folder(staging: Path, destination: Path) -> None:
    """Move `staging` to `destination`; an existing destination is moved aside first and removed after."""
    if not destination.exists():
        os.replace(staging, destination)
        return
    retired = Path(tempfile.mkdtemp(prefix=_staging_prefix(destination), dir=destination.parent))
    os.replace(destination, retired / destination.name)
    try:
        os.replace(staging, destination)
    except BaseException:
        os.replace(retired / destination.name, destination)
        raise
    finally:
        shutil.rmtree(retired, ignore_errors=True)


class Terminated(BaseException):
    """SIGTERM arrived; raised so that `atomic_output` and other cleanups run as they do for Ctrl-C."""


@contextlib.contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into a `Terminated` exception in the main thread for the duration of the block."""

    def handler(signum: int, frame: object) -> None:
        raise Terminated(f"terminated by signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
