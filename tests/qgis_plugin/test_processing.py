"""The Processing provider `cmtgeo`: its algorithms run the real CLI, report progress, cancel, load styled layers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from qgis.core import (
    QgsApplication,
    QgsCategorizedSymbolRenderer,
    QgsPalettedRasterRenderer,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)

from .conftest import CLASSES, COLORS

PARAMETERS = {
    "cmtgeo:segment": ["INPUT", "CHECKPOINT", "TILE_SIZE", "OVERLAP", "DEVICE", "TTA", "OUTPUT", "VECTOR_OUTPUT"],
    "cmtgeo:vectorize": ["INPUT", "SIMPLIFY", "MIN_AREA", "OUTPUT"],
}


@pytest.fixture(scope="module")
def provider(qgis_processing: None):
    """The plugin's provider, registered as the plugin does for qgis_process (initProcessing)."""
    from cmt_geo_qgis import classFactory

    plugin = classFactory(None)
    plugin.initProcessing()
    yield plugin.provider
    QgsApplication.processingRegistry().removeProvider(plugin.provider)


@pytest.fixture
def project():
    yield QgsProject.instance()
    QgsProject.instance().removeAllMapLayers()


def test_algorithms_and_parameters(provider) -> None:
    registry = QgsApplication.processingRegistry()
    assert registry.providerById("cmtgeo") is provider
    for algorithm_id, names in PARAMETERS.items():
        algorithm = registry.algorithmById(algorithm_id)
        assert algorithm is not None, algorithm_id
        assert [p.name() for p in algorithm.parameterDefinitions()] == names
    segment = registry.algorithmById("cmtgeo:segment")
    assert segment.displayName() == "Segment raster (CMT-UNet)"
    assert segment.parameterDefinition("VECTOR_OUTPUT").defaultFileExtension() == "gpkg"
    assert segment.parameterDefinition("OUTPUT").defaultFileExtension() == "tif"


def _classes_match_card(renderer: QgsPalettedRasterRenderer) -> None:
    classes = renderer.classes()
    assert [(c.value, c.label, c.color.getRgb()[:3]) for c in classes] == [
        (index, name, color) for index, (name, color) in enumerate(zip(CLASSES, COLORS, strict=True))
    ]


def _categories_match_card(renderer: QgsCategorizedSymbolRenderer) -> None:
    assert renderer.classAttribute() == "class_name"
    categories = [(c.value(), c.label(), c.symbol().color().getRgb()[:3]) for c in renderer.categories()]
    assert categories == list(zip(CLASSES, CLASSES, COLORS, strict=True))


def test_segment_loads_styled_layers_in_the_input_crs(
    provider, configured, fixtures: Path, tmp_path: Path, project
) -> None:
    import processing

    progress: list[float] = []
    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(progress.append)
    results = processing.runAndLoadResults(
        "cmtgeo:segment",
        {
            "INPUT": str(fixtures / "small.tif"),
            "CHECKPOINT": str(fixtures / "model.ckpt"),
            "TILE_SIZE": 64,
            "OUTPUT": str(tmp_path / "classes.tif"),
            "VECTOR_OUTPUT": str(tmp_path / "classes.gpkg"),
        },
        feedback=feedback,
    )
    assert results["OUTPUT"] == str(tmp_path / "classes.tif")
    assert results["VECTOR_OUTPUT"] == str(tmp_path / "classes.gpkg")
    assert progress[-1] == pytest.approx(100.0)
    assert progress == sorted(progress)
    layers = {layer.source().split("|")[0]: layer for layer in project.mapLayers().values()}
    raster, polygons = layers[results["OUTPUT"]], layers[results["VECTOR_OUTPUT"]]
    assert isinstance(raster, QgsRasterLayer)
    assert isinstance(polygons, QgsVectorLayer)
    for layer in (raster, polygons):
        assert layer.crs().authid() == "EPSG:32632"
    _classes_match_card(raster.renderer())
    _categories_match_card(polygons.renderer())
    assert polygons.featureCount() >= 1
    assert set(polygons.fields().names()) >= {"class_id", "class_name", "area_m2", "perimeter_m"}


def test_vectorize_loads_styled_polygons(provider, configured, fixtures: Path, tmp_path: Path, project) -> None:
    import processing

    segmented = processing.run(
        "cmtgeo:segment",
        {
            "INPUT": str(fixtures / "small.tif"),
            "CHECKPOINT": str(fixtures / "model.ckpt"),
            "OUTPUT": "TEMPORARY_OUTPUT",
        },
    )
    results = processing.runAndLoadResults(
        "cmtgeo:vectorize",
        {"INPUT": segmented["OUTPUT"], "SIMPLIFY": "none", "MIN_AREA": 1.0, "OUTPUT": str(tmp_path / "p.shp")},
    )
    assert results["OUTPUT"] == str(tmp_path / "p.shp")
    (polygons,) = project.mapLayers().values()
    assert polygons.crs().authid() == "EPSG:32632"
    _categories_match_card(polygons.renderer())


def test_cancel_leaves_no_outputs(provider, configured, fixtures: Path, tmp_path: Path) -> None:
    algorithm = QgsApplication.processingRegistry().createAlgorithmById("cmtgeo:segment")
    feedback = QgsProcessingFeedback()
    feedback.cancel()  # the user pressed Cancel: cmtgeo is stopped at once
    parameters = {
        "INPUT": str(fixtures / "large.tif"),
        "CHECKPOINT": str(fixtures / "model.ckpt"),
        "OUTPUT": str(tmp_path / "classes.tif"),
        "VECTOR_OUTPUT": str(tmp_path / "classes.gpkg"),
    }
    results, _ = algorithm.run(parameters, QgsProcessingContext(), feedback)
    assert results == {}
    assert os.listdir(tmp_path) == []


def test_missing_cmtgeo_is_a_message_not_a_traceback(provider, configured, fixtures: Path, tmp_path: Path) -> None:
    import processing

    configured(str(tmp_path / "no-env"))
    with pytest.raises(QgsProcessingException, match=r"no-env is not cmtgeo .*pip install cmt-geo") as raised:
        processing.run(
            "cmtgeo:segment",
            {
                "INPUT": str(fixtures / "small.tif"),
                "CHECKPOINT": str(fixtures / "model.ckpt"),
                "OUTPUT": "TEMPORARY_OUTPUT",
            },
        )
    assert "Traceback" not in str(raised.value)


def test_cli_error_is_the_algorithm_error(provider, configured, fixtures: Path, tmp_path: Path) -> None:
    import processing

    with pytest.raises(QgsProcessingException, match="has 3 bands but the model takes 4"):
        processing.run(
            "cmtgeo:segment",
            {
                "INPUT": str(fixtures / "three_bands.tif"),
                "CHECKPOINT": str(fixtures / "model.ckpt"),
                "OUTPUT": str(tmp_path / "c.tif"),
            },
        )
    assert os.listdir(tmp_path) == []
