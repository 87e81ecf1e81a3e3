"""The Processing provider `cmtgeo`: Segment raster (CMT-UNet) and Vectorize classification."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithms import SegmentAlgorithm, VectorizeAlgorithm
from .runner import VECTOR_EXTENSIONS

ICON_PATH = str(Path(__file__).with_name("icon.svg"))


class CmtGeoProvider(QgsProcessingProvider):
    """Processing provider id `cmtgeo`; class rasters are GeoTIFFs, polygons GeoPackages by default."""

    def id(self) -> str:
        return "cmtgeo"

    def name(self) -> str:
        return "cmt-geo"

    def longName(self) -> str:
        return "cmt-geo: CMT-UNet segmentation of aerial rasters"

    def icon(self) -> QIcon:
        return QIcon(ICON_PATH)

    def svgIconPath(self) -> str:
        return ICON_PATH

    def loadAlgorithms(self) -> None:
        self.addAlgorithm(SegmentAlgorithm())
        self.addAlgorithm(VectorizeAlgorithm())

    def supportedOutputRasterLayerExtensions(self) -> list[str]:
        return ["tif"]

    def defaultRasterFileExtension(self) -> str:
        return "tif"

    def supportedOutputVectorLayerExtensions(self) -> list[str]:
        return list(VECTOR_EXTENSIONS)

    def defaultVectorFileExtension(self, hasGeometry: bool = True) -> str:
        return "gpkg"

    def supportsNonFileBasedOutput(self) -> bool:
        return False  # cmtgeo writes files: no memory layers
