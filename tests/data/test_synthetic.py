"""Synthetic scenes: deterministic, every class drawn, readable through every dataset class, safe to write."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from cmt_geo.data import (
    IGNORE_INDEX,
    GridPatchSampler,
    LoveDA,
    PatchWindow,
    Potsdam,
    RasterSegmentation,
    SplitOptions,
    UAVid,
    Vaihingen,
    make_scene,
    write_synthetic,
)
from cmt_geo.data.synthetic import CLASSES, render
from cmt_geo.errors import ConfigError, OutputExistsError

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


def test_same_seed_same_scene_other_seed_other_scene() -> None:
    first = render(make_scene(96, 128, seed=4), 0, 96)
    again = render(make_scene(96, 128, seed=4), 0, 96)
    other = render(make_scene(96, 128, seed=5), 0, 96)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[1], other[1])
    assert first[0].shape == (4, 96, 128)
    assert first[1].shape == (96, 128)


def test_strips_join_seamlessly() -> None:
    scene = make_scene(80, 64, seed=1)
    whole = render(scene, 0, 80)[1]
    assert np.array_equal(np.concatenate([render(scene, 0, 30)[1], render(scene, 30, 80)[1]]), whole)


def test_every_class_appears_and_classes_differ_in_colour() -> None:
    image, label = render(make_scene(768, 768, seed=0), 0, 768)
    counts = np.bincount(label.ravel(), minlength=len(CLASSES))
    assert (counts > 0).all(), dict(zip(CLASSES, counts.tolist(), strict=True))
    assert counts.max() < 0.8 * label.size  # no class swamps the scene
    means = np.array([image[:, label == c].mean(axis=1) for c in range(len(CLASSES))])
    assert np.linalg.norm(means[2] - means[3]) > 20  # trees and grass differ, mostly through NIR and texture
    assert image.min() >= 1  # 0 is kept for no-data


def test_raster_layout_is_georeferenced_tiled_and_has_a_nodata_corner(tmp_path: Path) -> None:
    out = write_synthetic(tmp_path / "scene", "raster", size=128, seed=2)
    with rasterio.open(out / "images" / "scene.tif") as src:
        assert (src.count, src.crs.to_epsg(), src.nodata, src.block_shapes[0]) == (4, 32632, 0, (256, 256))
    dataset = RasterSegmentation(out, classes=CLASSES)  # finds images/ and labels/
    assert [tile.files.label for tile in dataset.tiles] == [out / "labels" / "scene.tif"]
    sample = dataset[PatchWindow(0, 0, 0, 128, 128)]
    assert (sample["mask"][:10, :10] == IGNORE_INDEX).all()
    assert (sample["mask"][-20:, -20:] != IGNORE_INDEX).all()
    kept = list(GridPatchSampler(dataset, 16, rank=0, world_size=1))
    every = list(GridPatchSampler(dataset, 16, rank=0, world_size=1, skip_nodata=False))
    assert len(kept) < len(every)
    assert all((dataset[w]["mask"] != IGNORE_INDEX).any() for w in kept)  # none lies wholly in the no-data corner


@pytest.mark.parametrize(
    ("layout", "dataset"), [("vaihingen", Vaihingen), ("potsdam", Potsdam), ("uavid", UAVid), ("loveda", LoveDA)]
)
def test_benchmark_layouts_load_through_their_datasets(tmp_path: Path, layout: str, dataset: type) -> None:
    root = write_synthetic(tmp_path / layout, layout, size=64, seed=0, tiles=3)  # type: ignore[arg-type]
    options = SplitOptions(val_fraction=0)
    for split, count in (("train", 2), ("test", 1)):
        loaded = dataset(root, split=split, split_options=options)
        assert len(loaded.tiles) == count, split
        mask = loaded[PatchWindow(0, 0, 0, 64, 64)]["mask"]
        assert mask.dtype == torch.int64
        assert ((mask < len(loaded.classes)) | (mask == IGNORE_INDEX)).all()
        assert len(mask.unique()) >= 2


def test_refuses_to_overwrite_and_never_half_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = write_synthetic(tmp_path / "scene", "raster", size=64)
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(OutputExistsError, match="pass --overwrite"):
        write_synthetic(out, "raster", size=64)
    import cmt_geo.data.synthetic as synthetic

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(synthetic, "write_raster_pair", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        write_synthetic(out, "raster", size=64, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == before
    assert [p.name for p in tmp_path.iterdir()] == ["scene"]  # no staging folder left behind


def test_an_existing_file_is_not_an_output_folder(tmp_path: Path) -> None:
    (tmp_path / "scene").write_text("notes")
    with pytest.raises(OutputExistsError, match="scene exists and is not a folder; choose another output folder"):
        write_synthetic(tmp_path / "scene", "raster", size=64, overwrite=True)
    assert (tmp_path / "scene").read_text() == "notes"


def test_bad_synthetic_options(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'mosaic' is not a layout"):
        write_synthetic(tmp_path / "x", "mosaic")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="too small"):
        make_scene(16, 64)
    with pytest.raises(ConfigError, match="more than the vaihingen layout has room for"):
        write_synthetic(tmp_path / "y", "vaihingen", size=32, tiles=40)
    with pytest.raises(ConfigError, match=r"size=1000000000 is out of range; use a tile side of 32\.\.8192"):
        write_synthetic(tmp_path / "y", "raster", size=1_000_000_000)
    with pytest.raises(ConfigError, match="seed=-1 must be an integer"):
        write_synthetic(tmp_path / "y", "raster", size=64, seed=-1)
    assert not (tmp_path / "y").exists()


#: Each synthetic class (impervious, building, low vegetation, tree, car, clutter) as each benchmark publishes it.
PUBLISHED_CODES = {
    "vaihingen": [(255, 255, 255), (0, 0, 255), (0, 255, 255), (0, 255, 0), (255, 255, 0), (255, 0, 0)],
    "potsdam": [(255, 255, 255), (0, 0, 255), (0, 255, 255), (0, 255, 0), (255, 255, 0), (255, 0, 0)],
    "uavid": [(128, 64, 128), (128, 0, 0), (128, 128, 0), (0, 128, 0), (192, 0, 192), (0, 0, 0)],
    "loveda": [(3,), (2,), (7,), (6,), (3,), (5,)],  # road, building, agriculture, forest, road, barren
}
FIRST_TRAINING_TILE = {"vaihingen": "1", "potsdam": "2_10", "uavid": "seq1/000000", "loveda": "Urban/0"}


@pytest.mark.parametrize("layout", list(PUBLISHED_CODES))
def test_synthetic_labels_use_the_published_colour_and_value_codes(tmp_path: Path, layout: str) -> None:
    """Compare the stored labels with the benchmarks' published codes, written out here, not the library's tables."""
    root = write_synthetic(tmp_path / layout, layout, size=64, seed=1, tiles=2)  # type: ignore[arg-type]
    kind = {"vaihingen": Vaihingen, "potsdam": Potsdam, "uavid": UAVid, "loveda": LoveDA}[layout]
    paths = kind.layout_paths(FIRST_TRAINING_TILE[layout], "train")
    _, classes = render(make_scene(64, 64, seed=1000), 0, 64)
    expected = np.moveaxis(np.array(PUBLISHED_CODES[layout], dtype=np.uint8)[classes], -1, 0)
    with rasterio.open(root / paths.label) as src:
        assert np.array_equal(src.read(), expected)


def _pixel_accuracy(
    model: torch.nn.Module, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]
) -> float:
    """Fit on random 96x96 crops of one scene, score on another."""
    image, label = (torch.from_numpy(a).unsqueeze(0) for a in train)
    optimizer = torch.optim.Adam(model.parameters(), 1e-2)
    generator = torch.Generator().manual_seed(0)
    for _ in range(600):
        row, col = torch.randint(0, image.shape[-1] - 96, (2,), generator=generator).tolist()
        crop = (..., slice(row, row + 96), slice(col, col + 96))
        loss = torch.nn.functional.cross_entropy(model(image[crop].float() / 255), label[crop].long())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        predicted = model(torch.from_numpy(test[0]).unsqueeze(0).float() / 255).argmax(1)[0]
    return (predicted.numpy() == test[1]).mean()


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Small convolutions run faster on one thread than on two busy cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_scenes_are_learnable_but_colour_alone_is_not_enough() -> None:
    torch.manual_seed(0)
    train, test = (render(make_scene(384, 384, seed=seed), 0, 384) for seed in (0, 1))
    majority = np.bincount(test[1].ravel()).max() / test[1].size
    colour_only = _pixel_accuracy(torch.nn.Conv2d(4, 6, 1), train, test)
    context = torch.nn.Sequential(
        torch.nn.Conv2d(4, 16, 5, padding=2),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 16, 5, padding=4, dilation=2),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 6, 1),
    )
    with_context = _pixel_accuracy(context, train, test)
    assert majority < colour_only < with_context - 0.05  # texture and shape carry what colour cannot
    assert with_context < 0.97  # a tiny CNN does not solve it: room for a real model
