"""cmt-geo for QGIS: segment rasters with CMT-UNet checkpoints through the `cmtgeo` of a cmt-geo environment."""

from __future__ import annotations

from typing import Any


def classFactory(iface: Any) -> Any:  # the name QGIS looks for
    """The plugin object QGIS loads (`iface` is None under `qgis_process`)."""
    from .plugin import CmtGeoPlugin

    return CmtGeoPlugin(iface)
