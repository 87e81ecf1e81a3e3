"""Plugin tests: they run under QGIS's own Python with pytest-qgis (`make qgis-test`), against the real `cmtgeo` of
the project's environment (.venv/bin/cmtgeo, or $CMTGEO).

The project's Python has no `qgis` module: there this folder is left out of collection (`make test` runs it
separately through `make qgis-test`, which says why when QGIS is missing). Run it alone with
`.venv-qgis/bin/python -m pytest tests/qgis_plugin --confcutdir=tests/qgis_plugin` (the confcutdir keeps the
main suite's conftest, which needs torch, out).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLUGIN_PARENT = REPO / "qgis_plugin"
CLASSES = ("water", "field", "forest")  # tests/conftest.py's CLASSES and COLORS, the card make_fixtures.py writes
COLORS = ((0, 0, 255), (255, 255, 0), (0, 128, 0))

if importlib.util.find_spec("qgis") is None:
    # Not QGIS's Python (the project's venv): nothing here can run. `make qgis-test` runs these tests.
    collect_ignore_glob = ["test_*.py"]
elif str(PLUGIN_PARENT) not in sys.path:
    sys.path.insert(0, str(PLUGIN_PARENT))


@pytest.fixture(scope="session")
def cmtgeo() -> str:
    """The project's `cmtgeo` ($CMTGEO, else .venv/bin/cmtgeo)."""
    path = os.environ.get("CMTGEO") or str(REPO / ".venv" / "bin" / "cmtgeo")
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is missing: run `make install` first (or set CMTGEO to a cmtgeo executable)")
    return path


@pytest.fixture(scope="session")
def fixtures(cmtgeo: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """model.ckpt (U-Net, 4 bands red/green/blue/nir, classes water/field/forest), small.tif (64x96), large.tif
    (512x512) and three_bands.tif, written by make_fixtures.py with the project's Python."""
    folder = tmp_path_factory.mktemp("fixtures")
    python = Path(cmtgeo).with_name("python")
    subprocess.run([str(python), str(Path(__file__).with_name("make_fixtures.py")), str(folder)], check=True)
    return folder


@pytest.fixture
def configured(cmtgeo: str) -> Iterator[Callable[[str], None]]:
    """Set the plugin's `cmtgeo` setting (to the project's cmtgeo unless told otherwise); restored afterwards."""
    from cmt_geo_qgis.settings import configured_executable, set_configured_executable

    before = configured_executable()
    set_configured_executable(cmtgeo)
    yield set_configured_executable
    set_configured_executable(before)


def wait_until(condition: Callable[[], bool], timeout: float = 120.0) -> None:
    """Process Qt events until `condition()` holds; fail after `timeout` seconds."""
    from qgis.core import QgsApplication

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"still waiting after {timeout:.0f} s")
        QgsApplication.processEvents()
        time.sleep(0.02)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here needs QGIS: mark it `qgis`."""
    for item in items:
        item.add_marker(pytest.mark.qgis)
