"""Dataset fixtures: each tests/data/<name>/data.py script generates its dataset's tiny real layout."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from cmt_geo.data import RasterSegmentation

HERE = Path(__file__).parent


def fixture_script(name: str) -> ModuleType:
    """The tests/data/<name>/data.py module."""
    spec = importlib.util.spec_from_file_location(f"fixture_{name}", HERE / name / "data.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Generate each dataset once per session; tests must not change these folders (use `dataset_copy`)."""
    made: dict[str, Path] = {}

    def make(name: str) -> Path:
        if name not in made:
            root = tmp_path_factory.mktemp(name)
            fixture_script(name).generate(root)
            made[name] = root
        return made[name]

    return make


@pytest.fixture
def dataset_copy(pristine: Callable[[str], Path], tmp_path: Path) -> Callable[[str], Path]:
    """A private copy of a dataset fixture that a test may break."""

    def copy(name: str) -> Path:
        return Path(shutil.copytree(pristine(name), tmp_path / name))

    return copy


def nan_nodata_raster(folder: Path) -> RasterSegmentation:
    """A 32x32 float32 raster with NaN no-data in its top 16 rows, labelled class 1 everywhere."""
    image = np.full((2, 32, 32), 0.5, dtype=np.float32)
    image[:, :16] = np.nan
    profile = {"height": 32, "width": 32, "crs": "EPSG:32632", "transform": from_origin(0, 32, 1, 1)}
    with rasterio.open(folder / "a.tif", "w", count=2, dtype="float32", nodata=np.nan, **profile) as dst:
        dst.write(image)
    (folder / "labels").mkdir()
    with rasterio.open(folder / "labels" / "a.tif", "w", count=1, dtype="uint8", **profile) as dst:
        dst.write(np.ones((1, 32, 32), dtype=np.uint8))
    return RasterSegmentation(folder / "a.tif", folder / "labels" / "a.tif", classes=["x", "y"])
