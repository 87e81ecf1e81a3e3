"""`evaluate` on whole tiles: a perfect predictor scores 1, the engine's own output gives the same confusion matrix,
the report files, and the errors (classes that do not fit, missing dataset, existing output, cancel)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from torch import nn

from cmt_geo.card import IGNORE_INDEX, ModelCard, NormalizationStats
from cmt_geo.data import RasterSegmentation, Vaihingen
from cmt_geo.errors import CanceledError, ConfigError, DatasetNotFoundError, OutputExistsError
from cmt_geo.evaluation.evaluate import evaluate
from cmt_geo.evaluation.metrics import confusion_matrix
from cmt_geo.inference import PredictOptions, predict_raster
from cmt_geo.progress import NullProgress

CLASSES = ("water", "field", "forest")
CPU = PredictOptions(tile_size=32, overlap=8, device="cpu")


class ValueToClass(nn.Module):
    """A perfect predictor for images whose single band holds the class index: logit_k = 2k·x - k², largest at
    the class k nearest to x (a 1x1 convolution)."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, classes, 1)
        with torch.no_grad():
            k = torch.arange(classes, dtype=torch.float32)
            self.conv.weight.copy_((2 * k).view(classes, 1, 1, 1) * 4)
            self.conv.bias.copy_(-(k**2) * 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def _class_map(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, len(CLASSES), (height // 8 + 1, width // 8 + 1))
    return np.kron(coarse, np.ones((8, 8), dtype=np.int64))[:height, :width].astype(np.uint8)


def _test_split(folder: Path, tile: str, ignored: bool = True) -> RasterSegmentation:
    """The value dataset written in `folder`, with image `tile` as its test split."""
    root = _write_value_dataset(folder, ignored)
    return RasterSegmentation(root, classes=CLASSES, split="test", test_images=[tile], compact=True)


def _write_value_dataset(root: Path, ignored: bool = True) -> Path:
    """images/{a,b}.tif hold the class index as the pixel value; labels/{a,b}.tif the classes, with ignored pixels."""
    for folder in ("images", "labels"):
        (root / folder).mkdir(parents=True)
    for seed, name in enumerate(("a", "b")):
        classes = _class_map(80, 100, seed)
        label = classes.copy()
        if ignored:
            label[:5] = IGNORE_INDEX
        else:
            label[:] = IGNORE_INDEX
        grid = {"crs": "EPSG:32632", "transform": Affine(0.5, 0, 500000 + 100 * seed, 0, -0.5, 9000000)}
        common = {"driver": "GTiff", "height": 80, "width": 100, "count": 1, "dtype": "uint8", **grid}
        with rasterio.open(root / "images" / f"{name}.tif", "w", **common) as dst:
            dst.write(classes[None])
        with rasterio.open(root / "labels" / f"{name}.tif", "w", nodata=IGNORE_INDEX, **common) as dst:
            dst.write(label[None])
    return root


@pytest.fixture
def perfect() -> tuple[nn.Module, ModelCard]:
    """The perfect predictor and a card for it: classes of `CLASSES`, one band fed as is."""
    card = ModelCard(
        architecture="value_to_class",
        architecture_args={},
        class_names=CLASSES,
        class_colors=((0, 0, 255), (255, 255, 0), (0, 128, 0)),
        normalization=NormalizationStats(mean=(0.0,), std=(1.0,), bands=("band1",)),
        patch_size=32,
    )
    return ValueToClass(len(CLASSES)), card


def test_a_perfect_predictor_scores_one_and_writes_the_report(
    tmp_path: Path, perfect: tuple[nn.Module, ModelCard]
) -> None:
    data = _test_split(tmp_path / "data", "b")
    out = tmp_path / "report"
    result = evaluate(perfect, data, options=CPU, output_dir=out, vis_tiles=1)
    label = _class_map(80, 100, 1)
    expected = confusion_matrix(label[5:], label[5:], 3)  # the first five rows are ignored
    np.testing.assert_array_equal(result.confusion, expected)
    assert result.scores.miou == result.scores.mean_f1 == result.scores.oa == 1.0
    assert result.scores.iou == (1.0, 1.0, 1.0)
    assert result.tiles[0].name == "b"
    assert result.tiles[0].pixels == 75 * 100
    assert result.output_dir == out
    assert sorted(p.name for p in out.iterdir()) == [
        ".cmtgeo-output.json",
        "confusion_matrix.png",
        "metrics.csv",
        "metrics.json",
        "vis",
    ]
    assert [p.name for p in (out / "vis").iterdir()] == ["b.png"]
    report = json.loads((out / "metrics.json").read_text())
    assert report["miou"] == report["oa"] == 1.0
    assert report["dataset"] == "raster"
    assert report["split"] == "test"
    assert report["confusion_matrix"]["counts"] == expected.tolist()
    assert [row["name"] for row in report["classes"]] == list(CLASSES)
    assert report["settings"]["tile_size"] == 32
    assert report["settings"]["overlap"] == 8
    assert report["settings"]["checkpoint"] is None
    with (out / "metrics.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert {"scope": "protocol", "class": "", "metric": "miou", "value": "1"} in rows
    assert {"scope": "class", "class": "forest", "metric": "support", "value": str(int(expected[2].sum()))} in rows


def test_a_dataset_by_name_and_split(tmp_path: Path, perfect: tuple[nn.Module, ModelCard]) -> None:
    root = _write_value_dataset(tmp_path / "data")
    result = evaluate(perfect, "raster", root=root, split="val", options=CPU)
    assert result.split == "val"
    assert len(result.tiles) == 1
    assert result.scores.miou == 1.0
    assert result.output_dir is None


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")  # ISPRS tiles are not georeferenced
def test_the_confusion_matrix_is_that_of_the_engine_on_the_eroded_test_labels(
    tmp_path: Path, vaihingen_case: tuple[Path, Path]
) -> None:
    root, checkpoint = vaihingen_case
    options = PredictOptions(tile_size=64, overlap=16, device="cpu", tta="flip")
    result = evaluate(checkpoint, "vaihingen", root=root, options=options)
    (test,) = Vaihingen(root, split="test").tiles
    assert test.files.label is not None
    assert test.files.label.name.endswith("_noBoundary.tif")
    predict_raster(test.files.image, tmp_path / "classes.tif", checkpoint, options=options)
    with rasterio.open(tmp_path / "classes.tif") as classes, rasterio.open(test.files.label) as label:
        predicted, truth = classes.read(1), Vaihingen.label_coding_of().decode(label.read(), test.files.label)
    assert (truth == IGNORE_INDEX).any()
    np.testing.assert_array_equal(result.confusion, confusion_matrix(predicted, truth, 6))
    assert result.tiles[0].label == str(test.files.label)
    assert result.scores.mean_over == (0, 1, 2, 3, 4)
    assert result.all_classes.mean_over == (0, 1, 2, 3, 4, 5)
    assert result.settings.tta == "flip"
    assert result.settings.checkpoint == str(checkpoint)


def test_an_existing_output_is_refused_and_replaced_with_overwrite(
    tmp_path: Path, perfect: tuple[nn.Module, ModelCard]
) -> None:
    data = _test_split(tmp_path / "data", "a")
    out = tmp_path / "report"
    evaluate(perfect, data, options=CPU, output_dir=out, vis_tiles=0)
    assert not (out / "vis").exists()
    with pytest.raises(OutputExistsError, match="--overwrite"):
        evaluate(perfect, data, options=CPU, output_dir=out)
    evaluate(perfect, data, options=CPU, output_dir=out, overwrite=True)
    assert (out / "vis" / "a.png").is_file()


def test_checkpoint_classes_that_do_not_fit_the_dataset_are_refused(
    checkpoint: Path, vaihingen_case: tuple[Path, Path]
) -> None:
    root, _ = vaihingen_case
    with pytest.raises(ConfigError, match="predicts 3 classes"):
        evaluate(checkpoint, "vaihingen", root=root)


def test_a_missing_dataset_fails_before_the_model_loads(
    tmp_path: Path, vaihingen_case: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, checkpoint = vaihingen_case

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("cmt_geo.inference.engine.load_model", never)
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        evaluate(checkpoint, "vaihingen", root=tmp_path / "missing", output_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="root="):
        evaluate(checkpoint, "vaihingen")


def test_a_split_without_labelled_pixels_is_an_error(tmp_path: Path, perfect: tuple[nn.Module, ModelCard]) -> None:
    data = _test_split(tmp_path / "data", "a", ignored=False)
    with pytest.raises(DatasetNotFoundError, match="no labelled pixels"):
        evaluate(perfect, data, options=CPU, output_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cancel_leaves_no_output(tmp_path: Path, perfect: tuple[nn.Module, ModelCard]) -> None:
    data = _test_split(tmp_path / "data", "a")
    progress = NullProgress()
    progress.cancel()
    with pytest.raises(CanceledError):
        evaluate(perfect, data, options=CPU, output_dir=tmp_path / "out", progress=progress)
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.iterdir()) == [tmp_path / "data"]
