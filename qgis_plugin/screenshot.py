"""Take a screenshot of QGIS showing a raster segmented by the plugin: the class raster and its polygons, styled.

Run it with any Python 3.9+; it starts the real QGIS desktop headless under Xvfb (`xvfb-run`, Debian package xvfb),
which runs this same file inside QGIS (`qgis --code`): the plugin's `cmtgeo:segment` runs on INPUT with CHECKPOINT,
the styled results are loaded above the input, the map zooms to them and the main window is saved as a PNG.

    $ python3 qgis_plugin/screenshot.py --input ortho.tif --checkpoint model.ckpt --output qgis_plugin/screenshot.png
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
    parser.add_argument("--size", default="1400x900", help="screen size, WIDTHxHEIGHT")
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
    """Segment, show the styled results, save the window, quit (run by QGIS's `--code`)."""
    import processing
    from qgis.core import QgsApplication, QgsProject, QgsRasterLayer
    from qgis.PyQt.QtCore import QTimer
    from qgis.utils import iface

    sys.path.insert(0, request["plugin_parent"])
    from cmt_geo_qgis import classFactory
    from cmt_geo_qgis.settings import set_configured_executable

    plugin = classFactory(iface)
    plugin.initGui()
    set_configured_executable(request["cmtgeo"])
    window = iface.mainWindow()
    window.showMaximized()
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
    classes = QgsProject.instance().mapLayersByName("Class raster")
    if classes:
        classes[0].setOpacity(0.6)
    iface.mapCanvas().setExtent(source.extent())
    iface.mapCanvas().refreshAllLayers()

    def save() -> None:
        window.grab().save(request["output"], "PNG")
        QgsApplication.exit(0)

    QTimer.singleShot(6000, save)


if _REQUEST in os.environ:  # executed inside QGIS by --code (where __name__ may be "__main__" too)
    _inside_qgis(json.loads(os.environ[_REQUEST]))
elif __name__ == "__main__":
    sys.exit(main())
