"""`CmtGeoPlugin`: the toolbar button and Raster menu entries, the Processing provider, and the results of a
segmentation run added to the map in their class colours."""

from __future__ import annotations

from typing import Any

from qgis.core import Qgis, QgsApplication, QgsProject
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction, QPushButton

from .dialog import SegmentDialog
from .layers import class_polygon_layer, class_raster_layer
from .provider import ICON_PATH, CmtGeoProvider
from .runner import CmtGeoNotFoundError, RunResult, SegmentRequest
from .settings import cmtgeo_executable
from .settings_dialog import SettingsDialog
from .styling import read_class_style
from .task import CmtGeoTask, log

MENU = "&cmt-geo"
TITLE = "cmt-geo"


class CmtGeoPlugin:
    """The plugin QGIS loads. `initProcessing` alone serves `qgis_process`; `initGui` adds the button and menu.

    Args:
        iface: QGIS's interface (None under `qgis_process`).
    """

    def __init__(self, iface: Any) -> None:
        self.iface = iface
        self.provider: CmtGeoProvider | None = None
        self.toolbar: Any = None
        self.actions: list[QAction] = []
        self.tasks: list[CmtGeoTask] = []

    def initProcessing(self) -> None:
        """Register the `cmtgeo` Processing provider (once)."""
        if self.provider is None:
            self.provider = CmtGeoProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:
        self.initProcessing()
        main_window = self.iface.mainWindow()
        segment = QAction(QIcon(ICON_PATH), "Segment raster (CMT-UNet)…", main_window)
        segment.setObjectName("cmtgeoSegment")
        segment.setToolTip("Classify a raster with a cmt-geo checkpoint and add the styled classes to the map")
        segment.triggered.connect(self.show_segment_dialog)
        settings = QAction("Settings…", main_window)
        settings.setObjectName("cmtgeoSettings")
        settings.triggered.connect(self.show_settings)
        self.actions = [segment, settings]
        self.toolbar = self.iface.addToolBar(TITLE)
        self.toolbar.setObjectName("cmtgeoToolbar")
        self.toolbar.addAction(segment)
        for action in self.actions:
            self.iface.addPluginToRasterMenu(MENU, action)

    def unload(self) -> None:
        for task in self.tasks:
            task.cancel()
        for action in self.actions:
            self.iface.removePluginRasterMenu(MENU, action)
            action.deleteLater()
        self.actions = []
        if self.toolbar is not None:
            self.toolbar.deleteLater()
            self.toolbar = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None

    # Actions

    def show_settings(self) -> None:
        SettingsDialog(self.iface.mainWindow()).exec()

    def show_segment_dialog(self) -> None:
        executable = self.executable()
        if executable is None:
            return
        dialog = SegmentDialog(executable, self.iface.mainWindow())
        if dialog.exec():
            self.segment(executable, dialog.request())

    def executable(self) -> str | None:
        """The `cmtgeo` to run, or None after telling the user how to install or configure it."""
        try:
            return cmtgeo_executable()
        except CmtGeoNotFoundError as error:
            log(str(error), Qgis.MessageLevel.Critical)
            bar = self.iface.messageBar()
            item = bar.createMessage(TITLE, str(error))
            button = QPushButton("Settings…", item)
            button.clicked.connect(self.show_settings)
            item.layout().addWidget(button)
            bar.pushWidget(item, Qgis.MessageLevel.Critical, 0)
            return None

    def segment(self, executable: str, request: SegmentRequest) -> CmtGeoTask:
        """Start `cmtgeo predict` for `request` in the task manager; the results are added to the map when done."""
        task = CmtGeoTask(
            f"Segmenting {request.input}", executable, request, lambda result: self._segmented(task, request, result)
        )
        self.tasks.append(task)
        QgsApplication.taskManager().addTask(task)
        return task

    def _segmented(self, task: CmtGeoTask, request: SegmentRequest, result: RunResult) -> None:
        if task in self.tasks:
            self.tasks.remove(task)
        bar = self.iface.messageBar()
        if result.status == "canceled":
            bar.pushMessage(TITLE, "Segmentation canceled; no outputs were left.", Qgis.MessageLevel.Info, 5)
            return
        if result.status == "failed":
            bar.pushMessage(
                TITLE, f"{result.message} (full log: cmt-geo tab of the log panel)", Qgis.MessageLevel.Critical, 0
            )
            return
        try:
            classes = class_raster_layer(request.output)
            style = read_class_style(request.output)
            polygons = class_polygon_layer(request.vector_output, style) if request.vector_output else None
        except ValueError as error:
            bar.pushMessage(
                TITLE, f"the results were written but cannot be shown: {error}", Qgis.MessageLevel.Warning, 0
            )
            return
        QgsProject.instance().addMapLayer(classes)
        if polygons is not None:
            QgsProject.instance().addMapLayer(polygons)  # above the classes
        bar.pushMessage(TITLE, f"Segmented into {request.output}", Qgis.MessageLevel.Success, 5)
