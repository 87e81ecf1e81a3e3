"""Layers in and out of cmt-geo: the file behind an input raster layer, and styled result layers."""

from __future__ import annotations

import os
from pathlib import Path

from qgis.core import QgsProviderRegistry, QgsRasterLayer, QgsVectorLayer

from .styling import ClassStyle, read_class_style, style_class_polygons, style_class_raster


def raster_file(layer: QgsRasterLayer) -> str:
    """The file on disk a raster layer reads (`cmtgeo` needs a file).

    Raises:
        ValueError: the layer is not a local GDAL raster file; the message says to save it as a GeoTIFF.
    """
    if layer.providerType() == "gdal":
        path = QgsProviderRegistry.instance().decodeUri("gdal", layer.source()).get("path") or ""
        if path and os.path.isfile(path):
            return str(path)
    raise ValueError(
        f"layer {layer.name()!r} is not a raster file on disk ({layer.source()}); save it as a GeoTIFF first "
        "(right-click the layer > Export > Save As) and segment that file"
    )


def class_raster_layer(path: str, name: str | None = None) -> QgsRasterLayer:
    """A class raster as a layer drawn in its class colours and names.

    Raises:
        ValueError: the file does not open as a raster, or carries no classes.
    """
    layer = QgsRasterLayer(path, name or Path(path).stem, "gdal")
    if not layer.isValid():
        raise ValueError(f"QGIS cannot open the class raster {path}")
    style_class_raster(layer, read_class_style(path))
    return layer


def class_polygon_layer(path: str, style: ClassStyle, name: str | None = None) -> QgsVectorLayer:
    """Class polygons as a layer categorized on class_name in the colours of `style`.

    Raises:
        ValueError: the file does not open as a vector layer.
    """
    layer = QgsVectorLayer(path, name or Path(path).stem, "ogr")
    if not layer.isValid():
        raise ValueError(f"QGIS cannot open the polygons {path}")
    style_class_polygons(layer, style)
    return layer
