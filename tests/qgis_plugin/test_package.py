"""The plugin zip `make plugin` builds: the layout and metadata the QGIS plugin repository requires, Qt6-ready
sources, and, installed from the zip, `qgis_process run cmtgeo:segment` through the real CLI."""

from __future__ import annotations

import configparser
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import pytest
from osgeo import gdal

from .conftest import CLASSES, PLUGIN_PARENT, REPO

sys.path.insert(0, str(PLUGIN_PARENT))
import build_zip

QGIS_PROCESS = "/usr/bin/qgis_process.bin"  # Debian's `qgis_process` wrapper script is broken: call the binary
#: Metadata the QGIS plugin repository refuses a plugin without (its validator's PLUGIN_REQUIRED_METADATA).
REQUIRED_METADATA = (
    "name",
    "description",
    "version",
    "qgisMinimumVersion",
    "author",
    "email",
    "about",
    "tracker",
    "repository",
)


@pytest.fixture(scope="module")
def plugin_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_zip.build(tmp_path_factory.mktemp("dist"))


def _metadata(archive: zipfile.ZipFile) -> dict[str, str]:
    parser = configparser.ConfigParser()
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(archive.read("cmt_geo_qgis/metadata.txt").decode("utf-8"))
    return dict(parser["general"])


def test_zip_layout(plugin_zip: Path) -> None:
    assert plugin_zip.name == "cmt_geo_qgis-0.1.0.zip"
    assert plugin_zip.stat().st_size < 25_000_000
    with zipfile.ZipFile(plugin_zip) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        metadata = _metadata(archive)
        assert {name.split("/")[0] for name in names} == {"cmt_geo_qgis"}
        assert re.match(r"^[A-Za-z][A-Za-z0-9-_]+$", "cmt_geo_qgis")
        for required in ("__init__.py", "metadata.txt", "LICENSE", metadata["icon"]):
            assert f"cmt_geo_qgis/{required}" in names
        for name in names:
            assert ".." not in name
            assert not name.startswith("/")
            assert not name.endswith((".pyc", ".pyo"))
            assert not {"__pycache__", ".git", "__MACOSX"} & set(name.split("/"))
            assert not any(part.startswith(".") for part in name.split("/"))
        assert "MIT License" in archive.read("cmt_geo_qgis/LICENSE").decode()
        assert archive.read(f"cmt_geo_qgis/{metadata['icon']}").startswith(b"<svg")


def test_metadata_fields(plugin_zip: Path) -> None:
    with zipfile.ZipFile(plugin_zip) as archive:
        metadata = _metadata(archive)
    for field in REQUIRED_METADATA:
        assert metadata.get(field, "").strip(), field
    for field in ("homepage", "tracker", "repository"):
        url = urlparse(metadata[field])
        assert url.scheme == "https", (field, metadata[field])
        assert url.netloc, (field, metadata[field])
    assert "/" not in metadata["author"]
    assert metadata["qgisMinimumVersion"] == "3.22"
    assert metadata["hasProcessingProvider"] == "yes"
    assert metadata["supportsQt6"] == "True"
    assert metadata["experimental"] in ("True", "False")
    version = re.search(r'__version__ = "([^"]+)"', (REPO / "cmt_geo" / "_version.py").read_text()).group(1)
    assert metadata["version"] == version  # the plugin is released with the cmt-geo it drives


def test_sources_are_qt6_ready() -> None:
    """Only qgis.PyQt imports (which map to PyQt5 or PyQt6), no PyQt5-only calls such as exec_()."""
    for path in (PLUGIN_PARENT / "cmt_geo_qgis").glob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*(from|import) PyQt[56]", text, re.MULTILINE), path.name
        assert "exec_(" not in text, path.name


def test_qgis_process_runs_segment_from_the_installed_zip(
    plugin_zip: Path, cmtgeo: str, fixtures: Path, tmp_path: Path
) -> None:
    plugins, binaries = tmp_path / "plugins", tmp_path / "bin"
    with zipfile.ZipFile(plugin_zip) as archive:
        archive.extractall(plugins)
    binaries.mkdir()
    (binaries / "cmtgeo").symlink_to(cmtgeo)  # found on PATH: no setting needed
    environment = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "QGIS_PLUGINPATH": str(plugins),
        "QGIS_CUSTOM_CONFIG_PATH": str(tmp_path / "profile"),  # a fresh profile: the plugin starts disabled
        "QGIS_OPTIONS_PATH": str(tmp_path / "profile"),
        "PATH": f"{binaries}{os.pathsep}{os.environ['PATH']}",
    }

    def qgis_process(*arguments: str) -> subprocess.CompletedProcess:
        return subprocess.run([QGIS_PROCESS, *arguments], env=environment, capture_output=True, text=True, timeout=300)

    enabled = qgis_process("plugins", "enable", "cmt_geo_qgis")
    assert enabled.returncode == 0, enabled.stderr
    output, vector = tmp_path / "out" / "classes.tif", tmp_path / "out" / "classes.gpkg"
    output.parent.mkdir()
    run = qgis_process(
        *("--json", "run", "cmtgeo:segment", "--"),
        f"INPUT={fixtures / 'small.tif'}",
        f"CHECKPOINT={fixtures / 'model.ckpt'}",
        f"OUTPUT={output}",
        f"VECTOR_OUTPUT={vector}",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    results = json.loads(run.stdout)["results"]
    assert results == {"OUTPUT": str(output), "VECTOR_OUTPUT": str(vector)}
    raster = gdal.Open(str(output))
    source = gdal.Open(str(fixtures / "small.tif"))
    assert raster.GetSpatialRef().IsSame(source.GetSpatialRef())
    assert raster.GetGeoTransform() == source.GetGeoTransform()
    assert json.loads(raster.GetMetadataItem("class_names")) == list(CLASSES)
    polygons = gdal.OpenEx(str(vector), gdal.OF_VECTOR)
    assert polygons.GetLayer(0).GetFeatureCount() >= 1
