"""The examples run: every notebook in examples/ top to bottom with small settings, and the `make demo` script.

Each notebook has one code cell tagged "parameters"; the test adds a cell after it that sets small values (as
papermill does), so the notebook runs as a reader runs it, only smaller. Notebooks run in examples/ (they import
examples/demo.py) and write under a temporary folder.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import rasterio

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOTEBOOKS = sorted(path.name for path in EXAMPLES.glob("*.ipynb"))
#: Per notebook: the small settings (None: a checkpoint made by the `model` fixture) and files it must write.
SMALL: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "01_quickstart.ipynb": (
        {"TRAIN_SIZE": 512, "HELDOUT_SIZE": 512, "STEPS": 2, "DEVICE": "cpu"},
        ("run/checkpoints/last.ckpt", "classes.tif", "polygons.gpkg"),
    ),
    "02_your_own_data.ipynb": (
        {"SIZE": 512, "STEPS": 2, "DEVICE": "cpu"},
        ("my-project/labels.gpkg", "run/config.yaml", "evaluation/metrics.json"),
    ),
    "03_large_rasters.ipynb": (
        {"SIZE": 384, "CHECKPOINT": None, "TILE_SIZE": 128, "BATCH_SIZE": 4, "DEVICE": "cpu"},
        ("classes.tif", "confidence.tif", "classes.gpkg"),
    ),
    "04_evaluation.ipynb": (
        {"SIZE": 160, "TILES": 6, "CHECKPOINT": None, "TILE_SIZE": 160, "DEVICE": "cpu"},
        ("report/metrics.json", "report/metrics.csv", "report/confusion_matrix.png"),
    ),
}


def _parameters(notebook: Any) -> int:
    tagged = [i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, "a notebook needs exactly one code cell tagged 'parameters'"
    return tagged[0]


def test_every_notebook_has_small_settings_for_existing_parameters() -> None:
    import nbformat

    assert set(NOTEBOOKS) == set(SMALL), "give every notebook in examples/ small settings here"
    for name in NOTEBOOKS:
        notebook = nbformat.read(EXAMPLES / name, as_version=4)
        source = notebook.cells[_parameters(notebook)].source
        assigned = {
            target.id
            for node in ast.parse(source).body
            if isinstance(node, ast.Assign)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        settings, _ = SMALL[name]
        assert set(settings) <= assigned, (name, set(settings) - assigned)
        assert "WORK" in assigned, name
        assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), (
            f"{name} is stored with outputs; clear them"
        )


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised cmt_unet_tiny for the synthetic scenes' bands and classes (ISPRS)."""
    import torch

    from cmt_geo.card import ModelCard, NormalizationStats
    from cmt_geo.data.synthetic import BANDS, CLASSES, COLORS
    from cmt_geo.models import create_model, save_checkpoint

    torch.manual_seed(0)
    net = create_model("cmt_unet_tiny", num_classes=len(CLASSES), in_channels=len(BANDS))
    card = ModelCard.for_model(
        net,
        class_names=CLASSES,
        class_colors=COLORS,
        normalization=NormalizationStats(mean=(120.0,) * 4, std=(50.0,) * 4, bands=BANDS),
        patch_size=128,
        ground_sample_distance=0.1,
    )
    return save_checkpoint(net, tmp_path_factory.mktemp("model") / "tiny.ckpt", card)


def execute(name: str, parameters: dict[str, Any], work: Path) -> Any:
    """Run a notebook in examples/ with `parameters` (and WORK=work) set after its parameters cell."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(EXAMPLES / name, as_version=4)
    values = {**parameters, "WORK": str(work)}
    injected = nbformat.v4.new_code_cell("\n".join(f"{key} = {value!r}" for key, value in values.items()))
    notebook.cells.insert(_parameters(notebook) + 1, injected)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": EXAMPLES}})
    client.execute()
    return notebook


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMALL))
def test_notebook_runs(name: str, model: Path, tmp_path: Path) -> None:
    settings, expected = SMALL[name]
    settings = {key: str(model) if key == "CHECKPOINT" and value is None else value for key, value in settings.items()}
    execute(name, settings, tmp_path)
    for relative in expected:
        assert (tmp_path / relative).is_file(), relative


@pytest.mark.slow
def test_demo_trains_predicts_vectorizes_and_scores(tmp_path: Path) -> None:
    """`make demo`'s script, small and short: every output is written and the held-out mIoU is printed."""
    output = tmp_path / "demo"
    command = [sys.executable, str(EXAMPLES / "demo.py"), "--output", str(output), "--device", "cpu"]
    small = ["--steps", "2", "--train-size", "512", "--heldout-size", "512"]
    done = subprocess.run([*command, *small], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "held-out mIoU" in done.stdout
    with rasterio.open(output / "heldout-classes.tif") as classes:
        assert classes.driver == "GTiff"
        assert classes.overviews(1) or classes.width <= 512
        assert json.loads(classes.tags()["class_names"])[1] == "building"
    metrics = json.loads((output / "evaluation" / "metrics.json").read_text())
    assert f"held-out mIoU {metrics['miou']:.3f}" in done.stdout
    for name in ("heldout-polygons.gpkg", "preview.png", "run/checkpoints/last.ckpt"):
        assert (output / name).is_file(), name
    again = subprocess.run([*command, *small], capture_output=True, text=True, timeout=600, check=False)
    assert again.returncode == 1
    assert "--overwrite" in again.stderr, again.stderr[-2000:]
