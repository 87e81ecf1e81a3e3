"""The class-raster metadata contract (`cmt_geo.io.class_raster`): what the predict writer writes, vectorize reads."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from rasterio.shutil import copy

from cmt_geo.errors import ConfigError
from cmt_geo.io.class_raster import CLASS_NAMES_TAG, read_class_names, write_class_metadata

from .conftest import WriteRaster


def test_names_colours_nodata_and_description_survive_a_copy_to_cog(write_raster: WriteRaster) -> None:
    path = write_raster(np.zeros((40, 40), np.uint8), nodata=None, class_names=["road", "tree"])
    cog = path.with_name("classes-cog.tif")
    copy(path, cog, driver="COG")
    with rasterio.open(cog) as src:
        assert read_class_names(src) == ("road", "tree")
        assert json.loads(src.tags()[CLASS_NAMES_TAG]) == ["road", "tree"]
        assert src.nodata == 255
        assert src.descriptions == ("class",)
        colormap = src.colormap(1)
        assert colormap[1] == (1, 2, 3, 255)
        assert colormap[255] == (0, 0, 0, 0)


def test_a_raster_without_the_tag_has_no_names(write_raster: WriteRaster) -> None:
    with rasterio.open(write_raster(np.zeros((4, 4), np.uint8))) as src:
        assert read_class_names(src) is None


def test_names_and_colours_must_match_and_fit_uint8(write_raster: WriteRaster) -> None:
    path = write_raster(np.zeros((4, 4), np.uint8))
    with rasterio.open(path, "r+") as dst:
        with pytest.raises(ConfigError, match="2 class names but 1 colours"):
            write_class_metadata(dst, ["a", "b"], [(0, 0, 0)])
        with pytest.raises(ConfigError, match="256 classes do not fit a uint8 class raster"):
            write_class_metadata(dst, [str(i) for i in range(256)], [(0, 0, 0)] * 256)
