"""The plugin in QGIS: loads and unloads cleanly, the dialog previews the checkpoint, a segmentation task adds
styled layers or shows the CLI's error, a missing cmtgeo gives the install message, and Settings > Test."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import qgis.utils
from qgis.core import (
    Qgis,
    QgsApplication,
    QgsCategorizedSymbolRenderer,
    QgsPalettedRasterRenderer,
    QgsProject,
    QgsRasterLayer,
    QgsTask,
)

from .conftest import CLASSES, PLUGIN_PARENT, wait_until

NAME = "cmt_geo_qgis"


@pytest.fixture
def plugin(qgis_iface, qgis_processing):
    """The plugin found, loaded and started the way QGIS does it (qgis.utils), and unloaded afterwards."""
    qgis.utils.plugin_paths = [str(PLUGIN_PARENT)]
    qgis.utils.updateAvailablePlugins()
    assert NAME in qgis.utils.available_plugins
    assert qgis.utils.pluginMetadata(NAME, "name") == "cmt-geo"
    assert qgis.utils.loadPlugin(NAME)
    assert qgis.utils.startPlugin(NAME)
    yield qgis.utils.plugins[NAME]
    if NAME in qgis.utils.plugins:
        assert qgis.utils.unloadPlugin(NAME)
    QgsProject.instance().removeAllMapLayers()
    qgis_iface.messageBar().clear_messages()


def test_loads_and_unloads_cleanly(plugin, qgis_iface) -> None:
    registry = QgsApplication.processingRegistry()
    assert registry.providerById("cmtgeo") is not None
    toolbar = plugin.toolbar
    assert [action.text() for action in toolbar.actions()] == ["Segment raster (CMT-UNet)…"]
    menu_entries = [call.args for call in qgis_iface.addPluginToRasterMenu.call_args_list]
    assert [(menu, action.text()) for menu, action in menu_entries[-2:]] == [
        ("&cmt-geo", "Segment raster (CMT-UNet)…"),
        ("&cmt-geo", "Settings…"),
    ]
    assert qgis.utils.unloadPlugin(NAME)
    assert registry.providerById("cmtgeo") is None
    removed = [call.args[1] for call in qgis_iface.removePluginRasterMenu.call_args_list[-2:]]
    assert [action for _, action in menu_entries[-2:]] == removed
    assert plugin.actions == []
    assert plugin.toolbar is None
    assert not [module for module in list(sys.modules) if module.startswith(NAME + ".")]


def test_reload_registers_the_provider_again(plugin) -> None:
    assert qgis.utils.reloadPlugin(NAME)
    assert QgsApplication.processingRegistry().providerById("cmtgeo") is not None


def test_dialog_previews_classes_and_band_mapping(plugin, configured, cmtgeo: str, fixtures: Path) -> None:
    from cmt_geo_qgis.dialog import SegmentDialog

    dialog = SegmentDialog(cmtgeo)
    dialog.input_file.setFilePath(str(fixtures / "small.tif"))
    assert dialog.output.filePath() == str(fixtures / "small_classes.tif")
    dialog.checkpoint.setFilePath(str(fixtures / "model.ckpt"))
    wait_until(lambda: dialog.bands.rowCount() == 4 and dialog.bands.item(3, 1) is not None, timeout=60)
    rows = [(dialog.bands.item(r, 0).text(), dialog.bands.item(r, 1).text()) for r in range(4)]
    assert rows == [("red", "band 1 (red)"), ("green", "band 2 (green)"), ("blue", "band 3 (blue)"),
                    ("nir", "band 4 (nir)")]  # fmt: skip
    summary = dialog.model_summary.text()
    assert "unet, trained on 64 px patches at 0.5 m" in summary
    assert all(name in summary for name in CLASSES)
    dialog.write_vector.setChecked(True)
    dialog.tta.setCurrentText("flip")
    dialog.tile_size.setValue(128)
    request = dialog.request()
    assert request.vector_output == str(fixtures / "small_classes.gpkg")
    assert (request.tta, request.tile_size, request.overlap, request.device) == ("flip", 128, None, "auto")

    dialog.input_file.setFilePath(str(fixtures / "three_bands.tif"))
    wait_until(lambda: "has 3 bands but the model takes 4" in dialog.message.text(), timeout=60)
    assert dialog.bands.item(0, 1).text() == "—"


def test_dialog_says_what_is_missing(plugin, cmtgeo: str, fixtures: Path) -> None:
    from cmt_geo_qgis.dialog import SegmentDialog

    dialog = SegmentDialog(cmtgeo)
    with pytest.raises(ValueError, match="choose an input raster"):
        dialog.request()
    dialog.input_file.setFilePath(str(fixtures / "small.tif"))
    with pytest.raises(ValueError, match="choose a cmt-geo checkpoint"):
        dialog.request()
    dialog.accept()
    assert dialog.message.text() == "choose a cmt-geo checkpoint file (.ckpt)"
    assert dialog.result() == 0  # still open


def _run_task(plugin, request, cmtgeo: str) -> QgsTask:
    task = plugin.segment(cmtgeo, request)
    wait_until(lambda: task.status() in (QgsTask.Complete, QgsTask.Terminated) and task not in plugin.tasks)
    return task


def test_segment_task_adds_styled_layers(plugin, qgis_iface, cmtgeo: str, fixtures: Path, tmp_path: Path) -> None:
    from cmt_geo_qgis.runner import SegmentRequest

    request = SegmentRequest(
        str(fixtures / "small.tif"), str(fixtures / "model.ckpt"), str(tmp_path / "c.tif"), str(tmp_path / "c.gpkg")
    )
    task = _run_task(plugin, request, cmtgeo)
    assert task.result.ok, task.result.log
    assert task.progress() == pytest.approx(100.0)
    order = [node.layer() for node in QgsProject.instance().layerTreeRoot().findLayers()]
    assert [layer.name() for layer in order] == ["c", "c"]
    polygons, raster = order  # polygons drawn above the classes
    assert isinstance(raster, QgsRasterLayer)
    assert isinstance(raster.renderer(), QgsPalettedRasterRenderer)
    assert [c.label for c in raster.renderer().classes()] == list(CLASSES)
    assert isinstance(polygons.renderer(), QgsCategorizedSymbolRenderer)
    assert [c.value() for c in polygons.renderer().categories()] == list(CLASSES)
    assert raster.crs().authid() == polygons.crs().authid() == "EPSG:32632"
    assert qgis_iface.messageBar().get_messages(Qgis.Success)


def test_failed_task_shows_the_cli_error(plugin, qgis_iface, cmtgeo: str, fixtures: Path, tmp_path: Path) -> None:
    from cmt_geo_qgis.runner import SegmentRequest

    request = SegmentRequest(str(fixtures / "small.tif"), str(tmp_path / "missing.ckpt"), str(tmp_path / "c.tif"))
    task = _run_task(plugin, request, cmtgeo)
    assert task.result.status == "failed"
    (message,) = qgis_iface.messageBar().get_messages(Qgis.Critical)
    assert "missing.ckpt" in message
    assert "does not exist" in message
    assert "cmt-geo tab of the log panel" in message
    assert QgsProject.instance().mapLayers() == {}
    assert os.listdir(tmp_path) == []


def test_missing_cmtgeo_shows_the_install_message(plugin, qgis_iface, configured, tmp_path: Path) -> None:
    configured(str(tmp_path / "nowhere"))
    plugin.show_segment_dialog()  # no dialog opens: the message bar explains instead
    item = qgis_iface.messageBar().currentItem()
    assert item is not None
    assert "pip install cmt-geo" in item.text()
    assert item.level() == Qgis.Critical


def test_settings_test_button(plugin, configured, cmtgeo: str, tmp_path: Path) -> None:
    from cmt_geo_qgis.settings import configured_executable
    from cmt_geo_qgis.settings_dialog import SettingsDialog

    dialog = SettingsDialog()
    assert dialog.path.filePath() == cmtgeo
    assert dialog.test()
    assert dialog.status.text().startswith("cmtgeo 0.1.0")
    dialog.path.setFilePath(str(tmp_path))
    assert not dialog.test()
    assert "pip install cmt-geo" in dialog.status.text()
    dialog.path.setFilePath(str(Path(cmtgeo).parent.parent))  # the environment folder works too
    assert dialog.test()
    dialog.accept()
    assert configured_executable() == str(Path(cmtgeo).parent.parent)
