"""The class-raster metadata contract: how a class raster carries its class names, colours and no-data.

A class raster that cmt-geo writes (`cmtgeo predict`, `cmt_geo.predict_raster`) is one uint8 band of class ids with:

- no-data 255 (`cmt_geo.card.IGNORE_INDEX`): pixels without a class;
- the dataset tag `class_names` (default namespace): the class names in id order as a JSON list of strings, e.g.
  ``["impervious", "building", "low vegetation"]`` (`gdalinfo` shows it as ``class_names=[...]``);
- a colour table on band 1: class id -> (R, G, B, 255) (GDAL shows the no-data entry as (0, 0, 0, 0));
- the band description "class".

`write_class_metadata` writes all of it on an open raster; `read_class_names` reads the names back. A COG made by
copying such a GeoTIFF with GDAL's COG driver keeps the tag, colour table, description and no-data.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from rasterio.io import DatasetReader, DatasetWriter

from cmt_geo.card import IGNORE_INDEX
from cmt_geo.errors import ConfigError, InvalidRasterError

#: The dataset tag holding the class names, a JSON list of strings in class-id order.
CLASS_NAMES_TAG = "class_names"
#: The description of the class band.
CLASS_BAND_DESCRIPTION = "class"


def write_class_metadata(
    dataset: DatasetWriter, class_names: Sequence[str], class_colors: Sequence[tuple[int, int, int]]
) -> None:
    """Write the contract's no-data, class names, colour table and band description on a uint8 class raster.

    Args:
        dataset: a single-band uint8 raster open for writing (e.g. a GeoTIFF later copied to a COG).
        class_names: one name per class id, in id order.
        class_colors: one (R, G, B) colour per class, 0-255.

    Raises:
        ConfigError: the names and colours differ in number, or there are more classes than uint8 ids below 255.
    """
    if len(class_colors) != len(class_names):
        raise ConfigError(
            f"{len(class_names)} class names but {len(class_colors)} colours: give one (R, G, B) per class"
        )
    if len(class_names) > IGNORE_INDEX:
        raise ConfigError(
            f"{len(class_names)} classes do not fit a uint8 class raster (ids 0..{IGNORE_INDEX - 1}, "
            f"{IGNORE_INDEX} = no-data); use at most {IGNORE_INDEX} classes"
        )
    dataset.nodata = IGNORE_INDEX
    dataset.update_tags(**{CLASS_NAMES_TAG: json.dumps(list(class_names))})
    dataset.set_band_description(1, CLASS_BAND_DESCRIPTION)
    dataset.write_colormap(1, {index: (*color, 255) for index, color in enumerate(class_colors)})


def read_class_names(dataset: DatasetReader) -> tuple[str, ...] | None:
    """The class names a class raster carries in its `class_names` tag, or None when it has no such tag.

    Raises:
        InvalidRasterError: the tag is not a JSON list of strings.
    """
    text = dataset.tags().get(CLASS_NAMES_TAG)
    if text is None:
        return None
    try:
        names = json.loads(text)
    except ValueError:
        names = None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise InvalidRasterError(
            f"{dataset.name}: tag {CLASS_NAMES_TAG}={text!r} is not a JSON list of class names; fix the tag or "
            "give the names (class_names=[...] in Python, --classes a,b,c on the command line)"
        )
    return tuple(names)
