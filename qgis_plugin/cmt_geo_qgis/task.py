"""`CmtGeoTask`: one `cmtgeo` run in QGIS's task manager, its log in the QGIS log panel under "cmt-geo"."""

from __future__ import annotations

import traceback
from typing import Callable

from qgis.core import Qgis, QgsMessageLog, QgsTask

from .runner import RunResult, SegmentRequest, VectorizeRequest, run_cmtgeo

#: The tab of the QGIS log panel the plugin writes to.
LOG_TAG = "cmt-geo"


def log(message: str, level: Qgis.MessageLevel = Qgis.MessageLevel.Info) -> None:
    """Write to the cmt-geo tab of the QGIS log panel (safe from any thread)."""
    QgsMessageLog.logMessage(message, LOG_TAG, level)


class CmtGeoTask(QgsTask):
    """Runs one request in the background; Cancel in the task manager stops the process and leaves no outputs.

    The worker thread never touches the GUI: `on_finished(result)` is called in the main thread when it ends.

    Args:
        description: what the task manager shows.
        executable: the `cmtgeo` to run.
        request: what to run.
        on_finished: called with the `RunResult` once the task ended (success, failure or cancel).
    """

    def __init__(
        self,
        description: str,
        executable: str,
        request: SegmentRequest | VectorizeRequest,
        on_finished: Callable[[RunResult], None],
    ) -> None:
        super().__init__(description, QgsTask.Flag.CanCancel)
        self.executable = executable
        self.request = request
        self.on_finished = on_finished
        self.result: RunResult | None = None

    def run(self) -> bool:
        try:
            self.result = run_cmtgeo(
                self.executable,
                self.request,
                on_progress=lambda fraction, message: self.setProgress(100.0 * fraction),
                on_log=log,
                is_canceled=self.isCanceled,
            )
        except Exception as error:  # a bug here must reach the user as a message, not kill QGIS's worker thread
            log(traceback.format_exc(), Qgis.MessageLevel.Critical)
            self.result = RunResult("failed", f"the cmt-geo plugin failed: {error}", traceback.format_exc())
        return self.result.ok

    def finished(self, result: bool) -> None:
        if self.result is None:  # canceled before it started
            self.result = RunResult("canceled", "canceled before it started; no outputs were written", "")
        if self.result.status == "failed":
            log(f"Error: {self.result.message}", Qgis.MessageLevel.Critical)
        self.on_finished(self.result)
