"""The Segment dialog: input raster, checkpoint, outputs and tiling options gathered into a `SegmentRequest`, with a
preview of the model's classes and of which input band feeds each model band."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

from qgis.core import QgsMapLayerProxyModel, QgsRasterLayer
from qgis.gui import QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import QProcess, QProcessEnvironment
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHeaderView,
    QLabel,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .algorithms import CHECKPOINT_FILTER
from .layers import raster_file
from .runner import TTA_CHOICES, SegmentRequest, child_environment

RASTER_FILTER = "Rasters (*.tif *.tiff *.vrt *.jp2 *.img);;All files (*)"
VECTOR_FILTER = "GeoPackage (*.gpkg);;ESRI Shapefile (*.shp);;GeoJSON (*.geojson)"
DEVICES = ("auto", "cpu", "cuda", "mps")


class SegmentDialog(QDialog):
    """Gathers a `SegmentRequest`; `request()` builds it (or says what is missing).

    Args:
        executable: the `cmtgeo` used for the checkpoint preview.
        parent: the parent widget (QGIS's main window).
    """

    def __init__(self, executable: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.executable = executable
        self.setWindowTitle("Segment raster (CMT-UNet)")
        self.setMinimumWidth(560)

        self.layer = QgsMapLayerComboBox()
        self.layer.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
        self.layer.setAllowEmptyLayer(True)
        self.input_file = QgsFileWidget()
        self.input_file.setFilter(RASTER_FILTER)
        self.checkpoint = QgsFileWidget()
        self.checkpoint.setFilter(CHECKPOINT_FILTER)
        self.output = QgsFileWidget()
        self.output.setStorageMode(QgsFileWidget.StorageMode.SaveFile)
        self.output.setFilter("GeoTIFF (*.tif)")
        self.write_vector = QCheckBox("Also write class polygons")
        self.vector_output = QgsFileWidget()
        self.vector_output.setStorageMode(QgsFileWidget.StorageMode.SaveFile)
        self.vector_output.setFilter(VECTOR_FILTER)
        self.vector_output.setEnabled(False)
        self.tile_size = QSpinBox()
        self.tile_size.setRange(31, 8192)  # 31 stands for "not set": the CLI takes 32 and up
        self.tile_size.setSpecialValueText("the model's patch size")
        self.tile_size.setValue(self.tile_size.minimum())
        self.overlap = QSpinBox()
        self.overlap.setRange(-1, 8192)
        self.overlap.setSpecialValueText("a quarter tile")
        self.overlap.setValue(self.overlap.minimum())
        self.device = QComboBox()
        self.device.setEditable(True)
        self.device.addItems(list(DEVICES))
        self.tta = QComboBox()
        self.tta.addItems(list(TTA_CHOICES))
        self.model_summary = QLabel("Choose a checkpoint to see its classes and bands.")
        self.model_summary.setWordWrap(True)
        self.bands = QTableWidget(0, 2)
        self.bands.setHorizontalHeaderLabels(["Model band", "Input band"])
        self.bands.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.bands.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.bands.setMaximumHeight(150)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #b00020")

        form = QFormLayout()
        form.addRow("Input raster layer", self.layer)
        form.addRow("… or raster file", self.input_file)
        form.addRow("Checkpoint", self.checkpoint)
        form.addRow("Class raster", self.output)
        form.addRow(self.write_vector, self.vector_output)
        form.addRow("Tile size (px)", self.tile_size)
        form.addRow("Overlap (px)", self.overlap)
        form.addRow("Device", self.device)
        form.addRow("Test-time augmentation", self.tta)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Segment")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(QLabel("Model"))
        layout.addWidget(self.model_summary)
        layout.addWidget(self.bands)
        layout.addWidget(self.message)
        layout.addWidget(buttons)

        self.preview = QProcess(self)
        environment = QProcessEnvironment()
        for key, value in child_environment().items():
            environment.insert(key, value)
        self.preview.setProcessEnvironment(environment)
        self.preview.finished.connect(self._show_preview)

        self.layer.layerChanged.connect(self._input_changed)
        self.input_file.fileChanged.connect(self._input_changed)
        self.checkpoint.fileChanged.connect(self.refresh_preview)
        self.write_vector.toggled.connect(self._vector_toggled)
        self._input_changed()

    # Inputs and defaults

    def input_path(self) -> str:
        """The raster to segment: the file if one is given, else the selected layer's file ("" when neither)."""
        path = self.input_file.filePath().strip()
        if path:
            return path
        layer = self.layer.currentLayer()
        if isinstance(layer, QgsRasterLayer):
            try:
                return raster_file(layer)
            except ValueError:
                return ""
        return ""

    def _input_changed(self, *_: Any) -> None:
        source = self.input_path()
        if source and not self.output.filePath():
            self.output.setFilePath(str(Path(source).with_name(Path(source).stem + "_classes.tif")))
        self.refresh_preview()

    def _vector_toggled(self, checked: bool) -> None:
        self.vector_output.setEnabled(checked)
        output = self.output.filePath().strip()
        if checked and output and not self.vector_output.filePath():
            self.vector_output.setFilePath(str(Path(output).with_suffix(".gpkg")))

    def request(self) -> SegmentRequest:
        """The request the dialog describes.

        Raises:
            ValueError: something is missing or invalid; the message says what.
        """
        source = self.input_path()
        if not source:
            layer = self.layer.currentLayer()
            if isinstance(layer, QgsRasterLayer):
                raster_file(layer)  # raises with the reason the layer cannot be used
            raise ValueError("choose an input raster layer or file")
        if not os.path.isfile(source):
            raise ValueError(f"input raster {source} does not exist")
        checkpoint = self.checkpoint.filePath().strip()
        if not checkpoint or not os.path.isfile(checkpoint):
            raise ValueError("choose a cmt-geo checkpoint file (.ckpt)")
        output = self.output.filePath().strip()
        if not output:
            raise ValueError("choose where to write the class raster (.tif)")
        if not output.lower().endswith((".tif", ".tiff")):
            output += ".tif"
        vector = self.vector_output.filePath().strip() if self.write_vector.isChecked() else ""
        if self.write_vector.isChecked() and not vector:
            raise ValueError("choose where to write the class polygons (.gpkg), or untick them")
        return SegmentRequest(
            input=source,
            checkpoint=checkpoint,
            output=output,
            vector_output=vector or None,
            tile_size=None if self.tile_size.value() == self.tile_size.minimum() else self.tile_size.value(),
            overlap=None if self.overlap.value() == self.overlap.minimum() else self.overlap.value(),
            device=self.device.currentText().strip().lower() or "auto",
            tta=self.tta.currentText(),  # type: ignore[arg-type]
        )

    def accept(self) -> None:
        try:
            self.request()
        except ValueError as error:
            self.message.setText(str(error))
            return
        self.message.setText("")
        super().accept()

    # The checkpoint preview: `cmtgeo info CHECKPOINT --input RASTER --json`, run without blocking the dialog

    def refresh_preview(self, *_: Any) -> None:
        """Ask `cmtgeo` for the checkpoint's card and band mapping; the answer fills the preview when it comes."""
        checkpoint = self.checkpoint.filePath().strip()
        if self.preview.state() != QProcess.ProcessState.NotRunning:
            self.preview.kill()
            self.preview.waitForFinished(2000)
        self.bands.setRowCount(0)
        if not checkpoint or not os.path.isfile(checkpoint):
            self.model_summary.setText("Choose a checkpoint to see its classes and bands.")
            return
        self.model_summary.setText("Reading the checkpoint…")
        source = self.input_path()
        arguments = ["info", checkpoint, "--json"] + (["--input", source] if source else [])
        self.preview.start(self.executable, arguments)

    def _show_preview(self, exit_code: int, *_: Any) -> None:
        stdout = bytes(self.preview.readAllStandardOutput()).decode("utf-8", "replace")
        stderr = bytes(self.preview.readAllStandardError()).decode("utf-8", "replace")
        if exit_code != 0:
            lines = [line for line in stderr.splitlines() if line.strip()]
            self.model_summary.setText(lines[-1] if lines else f"cmtgeo info failed (exit status {exit_code})")
            return
        try:
            report = json.loads(stdout)
        except ValueError:
            self.model_summary.setText("cmtgeo info did not answer with JSON: " + stdout[:200])
            return
        self.show_report(report)

    def show_report(self, report: dict) -> None:
        """Fill the preview from a `cmtgeo info CHECKPOINT --json` report."""
        card = report["card"]
        swatches = ", ".join(
            f'<span style="color: rgb({r},{g},{b})">■</span> {html.escape(name)}'
            for name, (r, g, b) in zip(card["class_names"], card["class_colors"])
        )
        gsd = card.get("ground_sample_distance")
        details = f"{html.escape(card['architecture'])}, trained on {card['patch_size']} px patches"
        details += f" at {gsd:g} m" if gsd else ""
        self.model_summary.setText(f"{details}<br>{len(card['class_names'])} classes: {swatches}")
        mapping = report.get("bands")
        model_bands = card["normalization"]["bands"]
        self.bands.setRowCount(len(model_bands))
        for row, name in enumerate(model_bands):
            self.bands.setItem(row, 0, QTableWidgetItem(name))
            self.bands.setItem(row, 1, QTableWidgetItem(_input_band_text(mapping, row)))
        if mapping and mapping.get("problem"):
            self.message.setText(mapping["problem"])
        else:
            self.message.setText("")


def _input_band_text(mapping: dict | None, row: int) -> str:
    """What feeds model band `row`: "band 3 (red)", or a dash when no input is chosen or the bands do not fit."""
    if not mapping or mapping.get("input_bands") is None:
        return "—"
    band = mapping["input_bands"][row]
    description = mapping["input_descriptions"][band - 1]
    return f"band {band}" + (f" ({description})" if description else "")
