"""predict_raster: the input's exact grid, seamless tiles, COG outputs, no-data, atomic writes, clear errors."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine

import cmt_geo
from cmt_geo.errors import CanceledError, CheckpointError, ConfigError, InvalidRasterError, OutputExistsError
from cmt_geo.inference import PredictOptions, predict_raster
from cmt_geo.inference.engine import _batches_ahead, _compiled_batch, _read_ahead, load_model
from cmt_geo.inference.model import TilePredictor
from cmt_geo.io.class_raster import read_class_names
from cmt_geo.io.grid import grid_windows
from cmt_geo.io.raster import input_bands
from cmt_geo.models import load_checkpoint

from ..conftest import CLASSES, COLORS, write_raster

SMALL = PredictOptions(tile_size=64, overlap=16, batch_size=3)


def _whole_image_classes(checkpoint: Path, image_path: Path) -> np.ndarray:
    model, card = load_checkpoint(checkpoint)
    with rasterio.open(image_path) as src:
        image = torch.from_numpy(src.read().astype(np.float32))[None]
    with torch.inference_mode():
        logits = model(card.normalization.normalize(image))
    return logits.argmax(1)[0].numpy()


@pytest.mark.parametrize(
    ("crs", "transform", "size"),
    [
        ("EPSG:32723", Affine(0.5, 0, 500000.0, 0, -0.5, 9120475.75), (157, 203)),  # UTM south, a quarter-metre origin
        ("EPSG:4326", Affine(1e-5, 0, 13.3773, 0, -1e-5, 52.5162), (131, 99)),
        ("EPSG:32632", Affine(0.5, 0, 500000.0, 0, -0.5, 5400000.0), (40, 50)),  # smaller than one tile
    ],
)
def test_the_class_raster_lands_on_the_input_grid(
    tmp_path: Path, checkpoint: Path, crs: str, transform: Affine, size: tuple[int, int]
) -> None:
    source = write_raster(tmp_path / "in.tif", *size, crs=crs, transform=transform)
    written = predict_raster(source, tmp_path / "classes.tif", checkpoint, options=SMALL)
    with rasterio.open(source) as src, rasterio.open(written.classes) as out:
        assert (out.crs, out.transform, out.shape) == (src.crs, src.transform, src.shape)
        assert out.transform.f == transform.f  # float64 end to end: 9120475.75 stays exact
        assert (out.count, out.dtypes[0], out.nodata) == (1, "uint8", 255)
        classes = out.read(1)
    assert set(np.unique(classes)) <= set(range(len(CLASSES)))


@pytest.mark.parametrize("dtype", ["uint16", "uint8"])  # uint8 goes to the model raw, other types as float32
def test_tiled_prediction_matches_one_whole_image_forward(tmp_path: Path, checkpoint: Path, dtype: str) -> None:
    source = write_raster(tmp_path / "in.tif", 160, 224, seed=1, dtype=dtype, maximum=255 if dtype == "uint8" else None)
    written = predict_raster(source, tmp_path / "classes.tif", checkpoint, options=SMALL)
    with rasterio.open(written.classes) as out:
        tiled = out.read(1)
    agreement = (tiled == _whole_image_classes(checkpoint, source)).mean()
    assert agreement >= 0.995, agreement


def test_outputs_are_cogs_with_colours_class_names_confidence_and_probabilities(
    tmp_path: Path, checkpoint: Path
) -> None:
    source = write_raster(tmp_path / "in.tif", 600, 530)  # above the 512 px COG block: overviews are made
    written = predict_raster(
        source,
        tmp_path / "classes.tif",
        checkpoint,
        options=PredictOptions(tile_size=256, batch_size=2),
        confidence=tmp_path / "confidence.tif",
        probabilities=tmp_path / "probabilities.tif",
    )
    with rasterio.open(written.classes) as out:
        assert out.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert out.overviews(1) == [2]
        assert out.block_shapes[0] == (512, 512)
        assert read_class_names(out) == CLASSES
        assert [out.colormap(1)[i][:3] for i in range(3)] == list(COLORS)
        classes = out.read(1)
        overview = out.read(1, out_shape=(300, 265))  # the first overview level
    assert not list(tmp_path.glob("*.ovr"))
    assert not list(tmp_path.glob("*striped*"))
    for r, c in [(0, 0), (150, 100), (299, 264), (131, 77)]:  # each overview pixel is a most frequent class of its 2x2
        block = classes[2 * r : 2 * r + 2, 2 * c : 2 * c + 2].ravel()
        assert np.sum(block == overview[r, c]) == np.bincount(block).max()
    assert written.probabilities is not None
    assert written.confidence is not None
    with rasterio.open(written.probabilities) as probs, rasterio.open(written.confidence) as conf:
        assert probs.descriptions == CLASSES
        percent = probs.read().astype(int)
        confidence = conf.read(1)
    assert (abs(percent.sum(axis=0) - 100) <= 2).all()
    assert np.array_equal(confidence, percent.max(axis=0))
    assert (percent.argmax(axis=0) == classes).mean() > 0.99  # ties after rounding to percent may differ


def test_nodata_pixels_get_nodata_and_an_empty_window_is_skipped(tmp_path: Path, checkpoint: Path) -> None:
    source = write_raster(tmp_path / "in.tif", 200, 150, nodata=0)
    with rasterio.open(source, "r+") as dst:
        image = dst.read()
        image[:, :70, :] = 0  # a whole row of windows holds no data
        image[:, 150:, 100:] = 0
        image[0, 120, 10] = 0  # one band alone at no-data: still data
        dst.write(image)
    calls: list[int] = []
    options = PredictOptions(tile_size=64, overlap=16, batch_size=1)
    import cmt_geo.inference.engine as engine

    original = engine.TilePredictor.__call__

    def counting(self: engine.TilePredictor, images: np.ndarray) -> np.ndarray:
        calls.append(len(images))
        return original(self, images)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine.TilePredictor, "__call__", counting)
        written = predict_raster(source, tmp_path / "classes.tif", checkpoint, options=options)
    with rasterio.open(written.classes) as out:
        classes = out.read(1)
    assert (classes[:70] == 255).all()
    assert (classes[150:, 100:] == 255).all()
    assert classes[120, 10] != 255
    assert (classes[70:150] != 255).all()
    all_windows = 4 * 3  # row starts 0, 48, 96, 136; column starts 0, 48, 86
    assert sum(calls) < all_windows


def test_pixels_masked_by_the_raster_get_nodata(tmp_path: Path, checkpoint: Path) -> None:
    source = write_raster(tmp_path / "in.tif", 100, 90)
    with rasterio.open(source, "r+") as dst:
        mask = np.full((100, 90), 255, np.uint8)
        mask[:30, :40] = 0
        dst.write_mask(mask)
    written = predict_raster(source, tmp_path / "classes.tif", checkpoint, options=SMALL)
    with rasterio.open(written.classes) as out:
        classes = out.read(1)
    assert (classes[:30, :40] == 255).all()
    assert (np.delete(classes.ravel(), np.flatnonzero(mask.ravel() == 0)) != 255).all()


def test_bands_are_matched_by_name_or_chosen_explicitly(tmp_path: Path, checkpoint: Path) -> None:
    reordered = write_raster(tmp_path / "bgrn.tif", 96, 96, descriptions=("blue", "green", "red", "nir"))
    same = write_raster(tmp_path / "rgbn.tif", 96, 96, descriptions=("red", "green", "blue", "nir"))
    with rasterio.open(reordered, "r+") as dst, rasterio.open(same) as ref:
        dst.write(ref.read()[[2, 1, 0, 3]])
    by_name = predict_raster(reordered, tmp_path / "a.tif", checkpoint, options=SMALL)
    reference = predict_raster(same, tmp_path / "b.tif", checkpoint, options=SMALL)
    with rasterio.open(by_name.classes) as a, rasterio.open(reference.classes) as b:
        assert np.array_equal(a.read(), b.read())
    six = write_raster(tmp_path / "six.tif", 64, 64, descriptions=("b1", "b2", "b3", "b4", "b5", "b6"))
    with pytest.raises(InvalidRasterError, match=r"has 6 bands but the model takes 4 .*--bands 1,2,3,4 "):
        predict_raster(six, tmp_path / "c.tif", checkpoint, options=SMALL)
    explicit = PredictOptions(tile_size=64, bands=(3, 2, 1, 6))
    assert predict_raster(six, tmp_path / "c.tif", checkpoint, options=explicit).classes.is_file()
    with pytest.raises(ConfigError, match=r"bands=.* do not fit"):
        predict_raster(six, tmp_path / "d.tif", checkpoint, options=PredictOptions(bands=(1, 2, 7, 8)))


def test_test_time_augmentation_keeps_the_grid_and_mostly_the_classes(tmp_path: Path, checkpoint: Path) -> None:
    source = write_raster(tmp_path / "in.tif", 96, 80)
    plain = predict_raster(source, tmp_path / "plain.tif", checkpoint, options=SMALL)
    with rasterio.open(plain.classes) as out:
        reference = out.read(1)
    for tta in ("flip", "d4"):
        options = PredictOptions(tile_size=64, overlap=16, tta=tta)  # type: ignore[arg-type]
        written = predict_raster(source, tmp_path / f"{tta}.tif", checkpoint, options=options)
        with rasterio.open(written.classes) as out:
            classes = out.read(1)
        assert classes.shape == reference.shape
        assert (classes == reference).mean() > 0.5


@pytest.mark.slow
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_compiled_prediction_compiles_once_and_matches_the_plain_one(
    tmp_path: Path, checkpoint: Path, device: str
) -> None:
    source = write_raster(tmp_path / "in.tif", 100, 150)  # grid rows of 3 windows: batches of 2 and 1
    options = PredictOptions(tile_size=64, overlap=16, batch_size=2, tta="d4", device=device)  # rotated views too
    plain = predict_raster(
        source, tmp_path / "plain.tif", checkpoint, options=options, probabilities=tmp_path / "p.tif"
    )
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    compiled = predict_raster(
        source,
        tmp_path / "compiled.tif",
        checkpoint,
        options=dataclasses.replace(options, compile=True),
        probabilities=tmp_path / "pc.tif",
    )
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs + 1
    assert plain.probabilities is not None
    assert compiled.probabilities is not None
    with rasterio.open(plain.probabilities) as a, rasterio.open(compiled.probabilities) as b:
        difference = np.abs(a.read().astype(int) - b.read().astype(int))
    assert difference.max() <= (1 if device == "cpu" else 3)  # uint8 percent; CUDA runs in bf16


def test_compiling_batches_spread_each_grid_row_evenly_and_skip_rasters_below_a_tile(tmp_path: Path) -> None:
    wide = write_raster(tmp_path / "wide.tif", 64, 304)  # 64 px tiles, stride 48: 6 windows per row
    narrow = write_raster(tmp_path / "narrow.tif", 300, 40)
    batches = {}
    with rasterio.open(wide) as src, rasterio.open(narrow) as small:
        for batch_size in (1, 2, 4, 5, 6, 16):
            options = PredictOptions(tile_size=64, overlap=16, batch_size=batch_size, compile=True)
            batches[batch_size] = _compiled_batch(src, options, 64)
        assert _compiled_batch(small, PredictOptions(tile_size=64, compile=True), 64) is None
        assert _compiled_batch(src, PredictOptions(tile_size=64), 64) is None
    assert batches == {1: 1, 2: 2, 4: 3, 5: 3, 6: 6, 16: 6}


def test_existing_outputs_are_refused_and_a_failure_leaves_nothing(tmp_path: Path, checkpoint: Path) -> None:
    source = write_raster(tmp_path / "in.tif", 128, 128)
    (tmp_path / "classes.tif").write_bytes(b"an earlier map")
    with pytest.raises(OutputExistsError, match="pass --overwrite"):
        predict_raster(source, tmp_path / "classes.tif", checkpoint, options=SMALL)
    assert (tmp_path / "classes.tif").read_bytes() == b"an earlier map"

    class CancelAfterTwo:
        def __init__(self) -> None:
            self.reports = 0

        def report(self, done: int, total: int | None, message: str = "") -> None:
            self.reports += 1

        def is_canceled(self) -> bool:
            return self.reports >= 2

    with pytest.raises(CanceledError):
        predict_raster(
            source,
            tmp_path / "classes.tif",
            checkpoint,
            options=SMALL,
            confidence=tmp_path / "confidence.tif",
            overwrite=True,
            progress=CancelAfterTwo(),
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["classes.tif", "in.tif"]
    assert (tmp_path / "classes.tif").read_bytes() == b"an earlier map"


def test_bad_inputs_and_checkpoints_are_one_line_errors(tmp_path: Path, checkpoint: Path) -> None:
    (tmp_path / "notes.tif").write_text("not a raster")
    with pytest.raises(InvalidRasterError, match="cannot read raster"):
        predict_raster(tmp_path / "notes.tif", tmp_path / "out.tif", checkpoint)
    source = write_raster(tmp_path / "in.tif", 64, 64)
    with pytest.raises(CheckpointError):
        predict_raster(source, tmp_path / "out.tif", tmp_path / "missing.ckpt")
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(checkpoint.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="truncated"):
        predict_raster(source, tmp_path / "out.tif", broken)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.ckpt", "in.tif", "notes.tif"]


def test_json_of_the_class_names_tag_is_what_the_vector_side_reads(tmp_path: Path, checkpoint: Path) -> None:
    written = predict_raster(write_raster(tmp_path / "in.tif", 64, 64), tmp_path / "c.tif", checkpoint, options=SMALL)
    with rasterio.open(written.classes) as out:
        assert json.loads(out.tags()["class_names"]) == list(CLASSES)


def test_a_dataarray_in_gives_a_class_dataarray_on_its_grid(tmp_path: Path, checkpoint: Path) -> None:
    import rioxarray

    source = write_raster(tmp_path / "in.tif", 70, 90)
    data = rioxarray.open_rasterio(source)
    classes = cmt_geo.predict_array(data, checkpoint, options=SMALL)
    written = predict_raster(source, tmp_path / "classes.tif", checkpoint, options=SMALL)
    with rasterio.open(written.classes) as out:
        assert np.array_equal(classes.values, out.read(1))
    assert classes.rio.transform() == data.rio.transform()
    assert classes.rio.crs == data.rio.crs
    assert classes.attrs["class_names"] == list(CLASSES)


def test_a_finer_input_is_warned_about_or_predicted_at_the_training_resolution(
    tmp_path: Path, checkpoint: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fine = Affine(0.25, 0, 500000.0, 0, -0.25, 5400000.0)  # the card says 0.5 m
    source = write_raster(tmp_path / "in.tif", 256, 256, transform=fine)
    totals: list[int | None] = []

    class Totals:
        def report(self, done: int, total: int | None, message: str = "") -> None:
            totals.append(total)

        def is_canceled(self) -> bool:
            return False

    predict_raster(source, tmp_path / "plain.tif", checkpoint, options=SMALL, progress=Totals())
    assert "has 0.25 m pixels but the model was trained on 0.5 m pixels" in caplog.text
    windows_at_input_resolution = totals[-1]
    totals.clear()
    options = PredictOptions(tile_size=64, overlap=16, resample=True)
    written = predict_raster(source, tmp_path / "resampled.tif", checkpoint, options=options, progress=Totals())
    assert totals[-1] is not None
    assert windows_at_input_resolution is not None
    assert totals[-1] <= windows_at_input_resolution / 2  # a quarter of the pixels went through the model
    with rasterio.open(written.classes) as out, rasterio.open(source) as src:
        assert (out.transform, out.shape, out.crs) == (src.transform, src.shape, src.crs)
        assert read_class_names(out) == CLASSES
        classes = out.read(1)
    assert set(np.unique(classes)) <= {0, 1, 2}
    geographic = write_raster(tmp_path / "ll.tif", 64, 64, crs="EPSG:4326", transform=Affine(1e-5, 0, 13, 0, -1e-5, 52))
    with pytest.raises(ConfigError, match="resampling needs the model's training pixel size"):
        predict_raster(geographic, tmp_path / "ll-classes.tif", checkpoint, options=options)


def test_a_batch_keeps_its_images_while_the_reader_fills_the_next_ones(tmp_path: Path, checkpoint: Path) -> None:
    source = write_raster(tmp_path / "in.tif", 200, 400)
    model, card = load_model(checkpoint)
    predictor = TilePredictor(model, card, torch.device("cpu"), "none")
    options = PredictOptions(tile_size=64, overlap=16, batch_size=2)
    tile, stride = options.grid(card.patch_size)
    seen = 0
    with rasterio.open(source) as src:
        windows = list(grid_windows(src.height, src.width, (tile, tile), (stride, stride)))
        batches = _batches_ahead(src, input_bands(src, card.band_names, None), windows, options, predictor)
        with contextlib.closing(batches):
            for batch in batches:
                images = batch.images[: len(batch.windows)]
                before = images.copy()
                time.sleep(0.02)  # as the model would: the reader runs ahead into the other buffers meanwhile
                assert np.array_equal(images, before)
                seen += 1
    assert seen >= 8


def test_stopping_early_does_not_hang_on_a_reader_that_then_fails() -> None:
    def reads() -> Iterator[int]:
        yield from range(4)
        time.sleep(0.05)
        raise OSError("a read failed")

    stopped = threading.Event()

    def consume() -> None:
        batches = _read_ahead(reads(), depth=2)
        next(batches)
        time.sleep(0.1)  # the reader fills the queue and waits to put the next read
        batches.close()  # the reader then puts it, fails, and has its error and its end to put
        stopped.set()

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    consumer.join(timeout=10)
    assert stopped.is_set()
