"""Styles for cmt-geo results: a paletted class raster and class polygons categorized on `class_name`, both in the
class colours and names the class raster carries (its colour table and `class_names` tag, as `cmtgeo predict`
writes them: see cmt_geo.io.class_raster)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from osgeo import gdal
from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsFillSymbol,
    QgsPalettedRasterRenderer,
    QgsRasterLayer,
    QgsRendererCategory,
    QgsVectorLayer,
)
from qgis.PyQt.QtGui import QColor

#: The dataset tag holding the class names as a JSON list (cmt_geo.io.class_raster.CLASS_NAMES_TAG).
CLASS_NAMES_TAG = "class_names"
#: The polygon attribute holding the class name (written by `cmtgeo vectorize`).
CLASS_NAME_FIELD = "class_name"
#: Opacity of polygon fills, so the raster below stays visible.
FILL_ALPHA = 150


@dataclass(frozen=True)
class ClassStyle:
    """The classes of a class raster: id, name and (R, G, B) colour of each, in id order."""

    ids: tuple[int, ...]
    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]


def read_class_style(path: str) -> ClassStyle:
    """The classes a class raster describes: names from its `class_names` tag, colours from its colour table (or
    the coloured table entries, named `class_<id>`, when it has no names).

    Raises:
        ValueError: the file cannot be opened, or it has neither a colour table nor class names.
    """
    dataset = gdal.OpenEx(path, gdal.OF_RASTER)
    if dataset is None:
        raise ValueError(f"cannot open class raster {path}")
    band = dataset.GetRasterBand(1)
    nodata = band.GetNoDataValue()
    names: list[str] = []
    text = dataset.GetMetadataItem(CLASS_NAMES_TAG)
    if text:
        parsed = json.loads(text)
        if isinstance(parsed, list):
            names = [str(name) for name in parsed]
    table = band.GetColorTable()
    entries = [table.GetColorEntry(index) for index in range(table.GetCount())] if table is not None else []
    colors = {index: tuple(entry[:3]) for index, entry in enumerate(entries) if entry[3] > 0 and index != nodata}
    if names:
        ids = list(range(len(names)))
    else:  # no names: the coloured entries, without the black padding GeoTIFF adds up to 256 entries
        ids = sorted(colors)
        while ids and colors[ids[-1]] == (0, 0, 0):
            ids.pop()
    if not ids:
        raise ValueError(f"{path} has no colour table and no {CLASS_NAMES_TAG} tag: it is not a cmt-geo class raster")
    return ClassStyle(
        ids=tuple(ids),
        names=tuple(names[i] if i < len(names) else f"class_{i}" for i in ids),
        colors=tuple(colors.get(i, _fallback_color(i)) for i in ids),
    )


def _fallback_color(index: int) -> tuple[int, int, int]:
    """A distinct colour for a class without one (golden-angle hues)."""
    color = QColor.fromHsv(int(index * 137.5) % 360, 200, 220)
    return (color.red(), color.green(), color.blue())


def style_class_raster(layer: QgsRasterLayer, style: ClassStyle) -> None:
    """Draw a class raster with one colour and legend label per class."""
    classes = [
        QgsPalettedRasterRenderer.Class(class_id, QColor(*color), name)
        for class_id, name, color in zip(style.ids, style.names, style.colors)
    ]
    layer.setRenderer(QgsPalettedRasterRenderer(layer.dataProvider(), 1, classes))
    layer.triggerRepaint()


def style_class_polygons(layer: QgsVectorLayer, style: ClassStyle) -> None:
    """Draw class polygons categorized on `class_name`, filled (half transparent) in the class colours."""
    categories = []
    for name, color in zip(style.names, style.colors):
        symbol = QgsFillSymbol.createSimple(
            {
                "color": f"{color[0]},{color[1]},{color[2]},{FILL_ALPHA}",
                "outline_color": QColor(*color).darker(160).name(),
                "outline_width": "0.3",
            }
        )
        categories.append(QgsRendererCategory(name, symbol, name))
    layer.setRenderer(QgsCategorizedSymbolRenderer(CLASS_NAME_FIELD, categories))
    layer.triggerRepaint()
