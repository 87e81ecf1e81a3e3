"""Take a screenshot of QGIS showing a raster segmented by the plugin, with the plugin's dialog open beside it.

Run it with any Python 3.9+; it starts the real QGIS desktop headless under Xvfb (`xvfb-run`, Debian package xvfb),
which runs this same file inside QGIS (`qgis --code`): the plugin's `cmtgeo:segment` runs on INPUT with CHECKPOINT,
the styled polygons are laid half-transparent over the input, the plugin's dialog is opened filled in (with its
band-mapping preview), and the screen is saved as a PNG. The README's screenshot is made this way from `make demo`'s
outputs:

    $ python3 qgis_plugin/screenshot.py --input runs/demo/data/heldout/images/scene.tif \
        --checkpoint runs/demo/run/checkpoints/best.ckpt --output qgis_plugin/screenshot.png
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

_REQUEST = "CMTGEO_SCREENSHOT"  # the job, as JSON, handed to the copy of this file that runs inside QGIS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, required=True, help="raster to segment")
    parser.add_argument("--checkpoint", type=Path, required=True, help="cmt-geo checkpoint")
    parser.add_argument("--output", type=Path, required=True, help="PNG to write")
    parser.add_argument("--cmtgeo", default=".venv/bin/cmtgeo", help="the cmtgeo to run (default: .venv/bin/cmtgeo)")
    parser.add_argument("--size", default="1600x900", help="screen size, WIDTHxHEIGHT")
    parser.add_argument("--timeout", type=float, default=600, help="seconds before giving up")
    args = parser.parse_args(argv)
    script = Path(__file__).resolve()
    if shutil.which("xvfb-run") is None:
        sys.stderr.write("xvfb-run is missing: apt-get install xvfb xauth\n")
        return 1
    with tempfile.TemporaryDirectory() as folder:
        request = {
            "input": str(args.input.resolve()),
            "checkpoint": str(args.checkpoint.resolve()),
            "output": str(args.output.resolve()),
            "results": folder,
            "cmtgeo": str(Path(args.cmtgeo).resolve()),
            "plugin_parent": str(script.parent),
        }
        environment = {**os.environ, _REQUEST: json.dumps(request)}
        environment.pop("QT_QPA_PLATFORM", None)  # a real (virtual) screen
        # QGIS embeds the first python3 on PATH's library: make that the system one QGIS was built with
        environment["PATH"] = os.pathsep.join(["/usr/bin", "/bin", environment.get("PATH", "")])
        command = ["xvfb-run", "-a", "-s", f"-screen 0 {args.size}x24", "/usr/bin/qgis", "--nologo"]
        command += ["--noversioncheck", "--profiles-path", folder, "--code", str(script)]
        subprocess.run(command, env=environment, timeout=args.timeout, check=False)
    if not args.output.exists():
        sys.stderr.write(f"no screenshot was written to {args.output}; see QGIS's messages above\n")
        return 1
    sys.stdout.write(f"wrote {args.output}\n")
    return 0


def _inside_qgis(request: dict) -> None:
    """Segment, show the styled results and the filled-in dialog, save the screen, quit (run by QGIS's `--code`)."""
    import processing
    from qgis.core import QgsProject, QgsRasterLayer, QgsRectangle
    from qgis.PyQt.QtCore import QProcess, QTimer
    from qgis.PyQt.QtWidgets import QApplication, QDockWidget
    from qgis.utils import iface

    sys.path.insert(0, request["plugin_parent"])
    from cmt_geo_qgis import classFactory
    from cmt_geo_qgis.dialog import SegmentDialog
    from cmt_geo_qgis.settings import set_configured_executable

    plugin = classFactory(iface)
    plugin.initGui()
    set_configured_executable(request["cmtgeo"])
    window = iface.mainWindow()
    screen = QApplication.primaryScreen().geometry()
    window.setGeometry(screen)
    for dock in window.findChildren(QDockWidget):  # only the Layers panel
        if dock.objectName() != "Layers":
            dock.hide()
    source = QgsRasterLayer(request["input"], Path(request["input"]).stem)
    QgsProject.instance().addMapLayer(source)
    results = Path(request["results"])
    processing.runAndLoadResults(
        "cmtgeo:segment",
        {
            "INPUT": request["input"],
            "CHECKPOINT": request["checkpoint"],
            "OUTPUT": str(results / "classes.tif"),
            "VECTOR_OUTPUT": str(results / "polygons.gpkg"),
        },
    )
    root = QgsProject.instance().layerTreeRoot()
    for layer in QgsProject.instance().mapLayersByName("Class raster"):
        root.findLayer(layer.id()).setItemVisibilityChecked(False)
    for layer in QgsProject.instance().mapLayersByName("Class polygons"):
        layer.setOpacity(0.55)
    dialog = SegmentDialog(request["cmtgeo"], window)
    dialog.layer.setLayer(source)
    dialog.checkpoint.setFilePath(request["checkpoint"])
    dialog.output.setFilePath(str(Path(request["input"]).with_name("scene-classes.tif")))
    dialog.write_vector.setChecked(True)
    dialog.vector_output.setFilePath(str(Path(request["input"]).with_name("scene-classes.gpkg")))
    dialog.show()
    dialog.move(screen.right() - dialog.width() - 16, screen.top() + 100)
    canvas = iface.mapCanvas()
    waited = [0.0]

    def frame() -> None:
        """The input fills the part of the map the dialog leaves free."""
        extent, margin = source.extent(), 20
        free = max(canvas.width() - dialog.width() - 3 * margin, canvas.width() // 3)
        scale = max(extent.width() / free, extent.height() / (canvas.height() - 2 * margin))  # map units per pixel
        left, middle = extent.xMinimum() - margin * scale, extent.center().y()
        half_height = canvas.height() / 2 * scale
        canvas.setExtent(QgsRectangle(left, middle - half_height, left + canvas.width() * scale, middle + half_height))
        canvas.refreshAllLayers()

    def save_when_ready() -> None:
        """Wait for the dialog's band-mapping preview (a `cmtgeo info` run), then save the screen and quit."""
        waited[0] += 0.5
        reading = dialog.preview.state() != QProcess.ProcessState.NotRunning or dialog.bands.rowCount() == 0
        if reading and waited[0] < 60:
            QTimer.singleShot(500, save_when_ready)
            return
        frame()
        QTimer.singleShot(3000, save)

    def save() -> None:
        QApplication.primaryScreen().grabWindow(0).save(request["output"], "PNG")
        sys.stdout.flush()
        os._exit(0)  # QGIS 3.22 can crash tearing down a project with layers; the picture is saved by then

    QTimer.singleShot(2000, save_when_ready)


if _REQUEST in os.environ:  # executed inside QGIS by --code (where __name__ may be "__main__" too)
    _inside_qgis(json.loads(os.environ[_REQUEST]))
elif __name__ == "__main__":
    sys.exit(main())
