"""Progress reporting: a two-method protocol with a terminal bar and a JSON-lines implementation.

Long jobs call `progress.report(done, total, message)` as they go and `check_canceled(progress)` between units of work.
The terminal bar serves the command line, JSON lines serve the QGIS plugin and scripts; a QGIS feedback object can
implement the same protocol directly.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Protocol, TextIO, runtime_checkable

from cmt_geo.errors import CanceledError


@runtime_checkable
class Progress(Protocol):
    """What a long-running job reports to, and asks whether it should stop."""

    def report(self, done: int, total: int | None, message: str = "") -> None:
        """Record that `done` of `total` units are finished (`total` None when unknown)."""
        ...

    def is_canceled(self) -> bool:
        """True once the user asked the job to stop."""
        ...


class _Cancelable:
    """Thread-safe cancel flag shared by the built-in implementations."""

    def __init__(self) -> None:
        self._canceled = threading.Event()

    def cancel(self) -> None:
        """Ask the job to stop at its next check."""
        self._canceled.set()

    def is_canceled(self) -> bool:
        return self._canceled.is_set()


class NullProgress(_Cancelable):
    """Reports nothing; can still be canceled."""

    def report(self, done: int, total: int | None, message: str = "") -> None:
        pass


class TerminalProgress(_Cancelable):
    """A one-line progress bar, redrawn in place on a terminal and printed as plain lines elsewhere.

    Args:
        stream: where to draw; standard error by default.
        width: characters in the bar.
        min_interval: seconds between redraws (the last report is always drawn).
    """

    def __init__(self, stream: TextIO | None = None, width: int = 30, min_interval: float = 0.1) -> None:
        super().__init__()
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.min_interval = min_interval
        self._last_draw = float("-inf")
        self._start = time.monotonic()
        self._interactive = self.stream.isatty()

    def report(self, done: int, total: int | None, message: str = "") -> None:
        now = time.monotonic()
        finished = total is not None and done >= total
        if not finished and now - self._last_draw < self.min_interval:
            return
        self._last_draw = now
        line = self._format(done, total, message, now - self._start)
        if self._interactive:
            self.stream.write("\r\x1b[2K" + line + ("\n" if finished else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def _format(self, done: int, total: int | None, message: str, elapsed: float) -> str:
        suffix = f" {message}" if message else ""
        if not total:
            return f"{done} done, {elapsed:.1f}s{suffix}"
        fraction = min(max(done / total, 0.0), 1.0)
        filled = round(fraction * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        return f"[{bar}] {fraction:6.1%} {done}/{total} {elapsed:.1f}s{suffix}"


class JsonLinesProgress(_Cancelable):
    """Writes one JSON object per report: {"done", "total", "fraction", "message"}.

    Args:
        stream: where to write; standard output by default.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self.stream = stream if stream is not None else sys.stdout

    def report(self, done: int, total: int | None, message: str = "") -> None:
        fraction = min(max(done / total, 0.0), 1.0) if total else None
        record = {"done": done, "total": total, "fraction": fraction, "message": message}
        self.stream.write(json.dumps(record) + "\n")
        self.stream.flush()


def check_canceled(progress: Progress) -> None:
    """Raise `CanceledError` if the user asked the job to stop."""
    if progress.is_canceled():
        raise CanceledError("canceled by the user")
