"""The Settings dialog: which `cmtgeo` to run, found on PATH when none is set, with a Test button."""

from __future__ import annotations

import shutil

from qgis.gui import QgsFileWidget
from qgis.PyQt.QtWidgets import QDialog, QDialogButtonBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from .runner import CmtGeoNotFoundError, cmtgeo_version, resolve_executable
from .settings import configured_executable, set_configured_executable


class SettingsDialog(QDialog):
    """Edits the configured `cmtgeo` executable or environment folder; empty means "search PATH"."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("cmt-geo settings")
        self.setMinimumWidth(520)
        self.path = QgsFileWidget()
        self.path.setFilePath(configured_executable())
        self.path.lineEdit().setPlaceholderText(f"search PATH ({shutil.which('cmtgeo') or 'cmtgeo not on PATH'})")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        test = QPushButton("Test")
        test.clicked.connect(self.test)
        row = QHBoxLayout()
        row.addWidget(self.path)
        row.addWidget(test)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("cmt-geo environment folder, or its cmtgeo executable (empty: search PATH)"))
        layout.addLayout(row)
        layout.addWidget(self.status)
        layout.addWidget(buttons)

    def test(self) -> bool:
        """Run `cmtgeo --version` with the path as entered; show the version, or why it failed and how to install."""
        try:
            executable = resolve_executable(self.path.filePath().strip() or None)
            self.status.setText(f"{cmtgeo_version(executable)} ({executable})")
            return True
        except (CmtGeoNotFoundError, RuntimeError) as error:
            self.status.setText(str(error))
            return False

    def accept(self) -> None:
        set_configured_executable(self.path.filePath())
        super().accept()
