"""The Processing algorithms `cmtgeo:segment` and `cmtgeo:vectorize`: parameters in, `cmtgeo` run, styled layers out.

They run from the Toolbox, the Graphical Modeler, Python (`processing.run("cmtgeo:segment", {...})`) and
`qgis_process run cmtgeo:segment -- INPUT=... CHECKPOINT=... OUTPUT=...`.
"""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsMapLayer,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
)

from .layers import raster_file
from .runner import TTA_CHOICES, CmtGeoNotFoundError, RunResult, SegmentRequest, VectorizeRequest, run_cmtgeo
from .settings import cmtgeo_executable
from .styling import ClassStyle, read_class_style, style_class_polygons, style_class_raster

CHECKPOINT_FILTER = "cmt-geo checkpoints (*.ckpt *.safetensors);;All files (*)"

#: Post-processors handed to Processing, which keeps only C++ pointers to them and outlives the algorithm clone that
#: made them: they live here for the session (a few bytes each).
_STYLERS: list[_ClassStyler] = []


class _ClassStyler(QgsProcessingLayerPostProcessorInterface):
    """Styles a result layer in its classes' colours once Processing has loaded it."""

    def __init__(self, style: ClassStyle) -> None:
        super().__init__()
        self.style = style

    def postProcessLayer(self, layer: QgsMapLayer, context: QgsProcessingContext, feedback: Any) -> None:
        if layer.type() == QgsMapLayer.RasterLayer:
            style_class_raster(layer, self.style)
        else:
            style_class_polygons(layer, self.style)


class _CmtGeoAlgorithm(QgsProcessingAlgorithm):
    """What both algorithms share: running `cmtgeo` with progress, cancel and errors, and styling their outputs."""

    def createInstance(self) -> QgsProcessingAlgorithm:
        return type(self)()

    def _run(self, request: SegmentRequest | VectorizeRequest, feedback: QgsProcessingFeedback) -> RunResult:
        """Run `cmtgeo`; raises QgsProcessingException with the CLI's one-line error when it fails."""
        try:
            executable = cmtgeo_executable()
        except CmtGeoNotFoundError as error:
            raise QgsProcessingException(str(error)) from None
        result = run_cmtgeo(
            executable,
            request,
            on_progress=lambda fraction, message: feedback.setProgress(100.0 * fraction),
            on_log=feedback.pushConsoleInfo,
            is_canceled=feedback.isCanceled,
        )
        if result.status == "failed":
            raise QgsProcessingException(result.message)
        if result.status == "canceled":
            feedback.pushInfo("Canceled: cmtgeo stopped and no outputs were left.")
        return result

    def _style_on_load(self, path: str, style: ClassStyle, context: QgsProcessingContext) -> None:
        """Style the layer Processing loads from `path` when the algorithm finishes (if it loads one)."""
        if path and context.willLoadLayerOnCompletion(path):
            styler = _ClassStyler(style)
            _STYLERS.append(styler)
            context.layerToLoadOnCompletionDetails(path).setPostProcessor(styler)

    def _input_file(self, parameters: dict, context: QgsProcessingContext) -> str:
        """The file behind the INPUT raster layer."""
        layer = self.parameterAsRasterLayer(parameters, "INPUT", context)
        if layer is None:
            raise QgsProcessingException(f"INPUT {parameters.get('INPUT')!r} is not a raster layer or file")
        try:
            return raster_file(layer)
        except ValueError as error:
            raise QgsProcessingException(str(error)) from None


def _advanced(parameter: QgsProcessingParameterDefinition) -> QgsProcessingParameterDefinition:
    parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
    return parameter


def _optional_int(algorithm: QgsProcessingAlgorithm, parameters: dict, name: str, context: Any) -> int | None:
    """An optional integer parameter's value, None when it is not set."""
    if parameters.get(name) in (None, ""):
        return None
    return algorithm.parameterAsInt(parameters, name, context)


class SegmentAlgorithm(_CmtGeoAlgorithm):
    """Segment raster (CMT-UNet): `cmtgeo predict` into a class raster and, optionally, class polygons."""

    def name(self) -> str:
        return "segment"

    def displayName(self) -> str:
        return "Segment raster (CMT-UNet)"

    def shortHelpString(self) -> str:
        return (
            "Classifies every pixel of a raster with a cmt-geo checkpoint (CMT-UNet or another cmt-geo model) into "
            "a class GeoTIFF on the input's grid and CRS, drawn in the model's class colours; optionally also writes "
            "the class polygons (GeoPackage by default), categorized on class_name.\n\n"
            "The work runs in the cmt-geo environment set in Raster > cmt-geo > Settings (or cmtgeo on PATH). "
            "TILE_SIZE defaults to the model's training patch size, OVERLAP to a quarter tile; DEVICE is auto, cpu, "
            "cuda, cuda:N or mps; TTA is 0 none, 1 flip, 2 d4."
        )

    def initAlgorithm(self, config: Any = None) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Input raster"))
        self.addParameter(
            QgsProcessingParameterFile(
                "CHECKPOINT", "Checkpoint", behavior=QgsProcessingParameterFile.File, fileFilter=CHECKPOINT_FILTER
            )
        )
        integer = QgsProcessingParameterNumber.Integer
        tile = QgsProcessingParameterNumber("TILE_SIZE", "Tile size (px)", integer, None, True, 32, 8192)
        self.addParameter(_advanced(tile))
        self.addParameter(_advanced(QgsProcessingParameterNumber("OVERLAP", "Overlap (px)", integer, None, True, 0)))
        self.addParameter(_advanced(QgsProcessingParameterString("DEVICE", "Device", "auto")))
        self.addParameter(
            _advanced(QgsProcessingParameterEnum("TTA", "Test-time augmentation", list(TTA_CHOICES), False, 0))
        )
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Class raster"))
        self.addParameter(
            QgsProcessingParameterVectorDestination(
                "VECTOR_OUTPUT", "Class polygons", QgsProcessing.TypeVectorPolygon, None, True, False
            )
        )

    def processAlgorithm(self, parameters: dict, context: QgsProcessingContext, feedback: Any) -> dict:
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        if not output.lower().endswith((".tif", ".tiff")):
            raise QgsProcessingException(f"OUTPUT {output!r} must be a GeoTIFF (.tif)")
        vector_output = self.parameterAsOutputLayer(parameters, "VECTOR_OUTPUT", context) or None
        try:
            request = SegmentRequest(
                input=self._input_file(parameters, context),
                checkpoint=self.parameterAsFile(parameters, "CHECKPOINT", context),
                output=output,
                vector_output=vector_output,
                tile_size=_optional_int(self, parameters, "TILE_SIZE", context),
                overlap=_optional_int(self, parameters, "OVERLAP", context),
                device=(self.parameterAsString(parameters, "DEVICE", context) or "auto").strip().lower(),
                tta=TTA_CHOICES[self.parameterAsEnum(parameters, "TTA", context)],  # type: ignore[arg-type]
            )
        except ValueError as error:
            raise QgsProcessingException(str(error)) from None
        if not self._run(request, feedback).ok:
            return {}
        style = read_class_style(output)
        self._style_on_load(output, style, context)
        if vector_output:
            self._style_on_load(vector_output, style, context)
        return {"OUTPUT": output, "VECTOR_OUTPUT": vector_output}


class VectorizeAlgorithm(_CmtGeoAlgorithm):
    """Vectorize classification: `cmtgeo vectorize` a class raster into class polygons."""

    def name(self) -> str:
        return "vectorize"

    def displayName(self) -> str:
        return "Vectorize classification"

    def shortHelpString(self) -> str:
        return (
            "Turns a class raster (one band of class ids, e.g. from Segment raster) into polygons with class_id, "
            "class_name, area_m2 and perimeter_m, merged across block borders, in the raster's CRS, categorized on "
            "class_name in the raster's class colours.\n\n"
            "SIMPLIFY is auto (1.5 pixels), none, or a tolerance in CRS units (neighbours keep shared edges); "
            "polygons smaller than MIN_AREA m² merge into the neighbour they share the longest edge with."
        )

    def initAlgorithm(self, config: Any = None) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Class raster"))
        self.addParameter(QgsProcessingParameterString("SIMPLIFY", "Simplify (auto, none or a tolerance)", "auto"))
        self.addParameter(
            QgsProcessingParameterNumber(
                "MIN_AREA", "Minimum polygon area (m²)", QgsProcessingParameterNumber.Double, 0.0, False, 0.0
            )
        )
        self.addParameter(
            QgsProcessingParameterVectorDestination("OUTPUT", "Class polygons", QgsProcessing.TypeVectorPolygon)
        )

    def processAlgorithm(self, parameters: dict, context: QgsProcessingContext, feedback: Any) -> dict:
        source = self._input_file(parameters, context)
        try:
            style: ClassStyle | None = read_class_style(source)
        except ValueError as error:
            style = None
            feedback.pushWarning(f"the polygons stay unstyled: {error}")
        try:
            request = VectorizeRequest(
                input=source,
                output=self.parameterAsOutputLayer(parameters, "OUTPUT", context),
                simplify=(self.parameterAsString(parameters, "SIMPLIFY", context) or "auto").strip().lower(),
                min_area=self.parameterAsDouble(parameters, "MIN_AREA", context),
            )
        except ValueError as error:
            raise QgsProcessingException(str(error)) from None
        if not self._run(request, feedback).ok:
            return {}
        if style is not None:
            self._style_on_load(request.output, style, context)
        return {"OUTPUT": request.output}
