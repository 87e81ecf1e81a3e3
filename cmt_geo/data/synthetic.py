"""Procedural synthetic aerial scenes: buildings with shadows, roads, trees, low vegetation, cars and clutter.

A scene is drawn as vector objects, then rendered strip by strip, so any size fits in memory. The same seed gives
the same scene. Classes follow the ISPRS scheme; writers save a georeferenced GeoTIFF pair or the Vaihingen,
Potsdam, UAVid and LoveDA layouts, each at the paths and in the label coding its dataset class defines.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio
import shapely
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning
from rasterio.features import rasterize
from shapely import affinity

from cmt_geo.data.isprs import ISPRSDataset
from cmt_geo.data.labels import IGNORE_INDEX
from cmt_geo.data.registry import DATASET_NAMES, DatasetName, dataset_class
from cmt_geo.errors import ConfigError
from cmt_geo.io.outputs import atomic_output
from cmt_geo.progress import NullProgress, Progress, check_canceled

#: Class indices of a synthetic scene (the ISPRS order).
IMPERVIOUS, BUILDING, LOW_VEGETATION, TREE, CAR, CLUTTER = range(6)
CLASSES = ISPRSDataset.classes
COLORS = ISPRSDataset.colors
#: Bands of a synthetic image.
BANDS = ("red", "green", "blue", "nir")

_ROOFS = ((172, 82, 62, 80), (112, 112, 118, 72), (150, 128, 108, 90), (196, 196, 190, 105))
_BASE = {IMPERVIOUS: (126, 126, 122, 70), LOW_VEGETATION: (102, 140, 64, 185), TREE: (52, 96, 42, 205)}
_TEXTURE = {IMPERVIOUS: 5.0, BUILDING: 4.0, LOW_VEGETATION: 9.0, TREE: 20.0, CAR: 3.0, CLUTTER: 8.0}
_STRIP_ROWS = 1024


@dataclass(frozen=True)
class SceneObject:
    """One drawn object: its shape in pixel coordinates (x = column, y = row), class and colour (R, G, B, NIR)."""

    shape: shapely.Geometry
    label: int
    color: tuple[int, int, int, int]


@dataclass(frozen=True)
class Scene:
    """A synthetic scene as vectors, rendered on demand with `render`.

    Args:
        height: rows.
        width: columns.
        seed: seeds the layout and the pixel noise.
        objects: objects in drawing order (later ones cover earlier ones).
        shadows: shapes darkened by cast shadows.
        coarse_noise: (4, height / 32 + 2, width / 32 + 2) low-frequency brightness noise.
    """

    height: int
    width: int
    seed: int
    objects: tuple[SceneObject, ...]
    shadows: shapely.Geometry
    coarse_noise: npt.NDArray[np.float32]


def _box(cx: float, cy: float, length: float, breadth: float, angle: float) -> shapely.Geometry:
    shape = shapely.box(cx - length / 2, cy - breadth / 2, cx + length / 2, cy + breadth / 2)
    return affinity.rotate(shape, angle, origin=(cx, cy))


def default_gsd(height: int, width: int) -> float:
    """10 cm, coarser for small scenes so that every scene spans at least 60 m and holds several objects."""
    return max(0.1, 60.0 / min(height, width))


def make_scene(height: int, width: int, seed: int = 0, gsd: float | None = None) -> Scene:
    """Draw a scene's objects.

    Args:
        height: rows.
        width: columns.
        seed: the same seed gives the same scene.
        gsd: ground sample distance in metres, which sets object sizes in pixels; `default_gsd` when None.

    Raises:
        ConfigError: a size below 32 pixels or a non-positive gsd.
    """
    if height < 32 or width < 32:
        raise ConfigError(f"scene size {width}x{height} is too small; use at least 32x32 pixels")
    gsd = default_gsd(height, width) if gsd is None else gsd
    if gsd <= 0:
        raise ConfigError(f"gsd={gsd} must be positive metres per pixel, e.g. 0.1")
    rng = np.random.default_rng(seed)
    metre = 1.0 / gsd
    area = height * width / metre**2  # square metres
    objects: list[SceneObject] = []

    roads = []
    for axis in (0, 1):
        extent = width if axis == 0 else height
        for _ in range(rng.poisson(extent / metre / 70)):
            at = rng.uniform(0.05, 0.95) * extent
            road_width = rng.uniform(5, 10) * metre
            line = shapely.LineString([(at, -10), (at, height + 10)] if axis == 0 else [(-10, at), (width + 10, at)])
            roads.append((line, axis))
            shade = int(rng.integers(-15, 15))
            color = tuple(int(c + shade) for c in _BASE[IMPERVIOUS])
            objects.append(SceneObject(line.buffer(road_width / 2, cap_style="flat"), IMPERVIOUS, color))  # type: ignore[arg-type]
    road_union = shapely.union_all([o.shape for o in objects]) if objects else shapely.Polygon()

    for _ in range(rng.poisson(area / 900)):  # paved yards and parking lots
        (x, y), (length, breadth) = rng.uniform(0, (width, height)), rng.uniform(6, 20, 2) * metre
        yard = _box(x, y, length, breadth, rng.uniform(0, 90))
        objects.append(SceneObject(yard, IMPERVIOUS, (140, 136, 128, 78)))
    for _ in range(rng.poisson(area / 1500)):
        points = rng.uniform(0, (width, height)) + rng.normal(0, 1.5 * metre, (6, 2))
        color = (*(int(c) for c in rng.integers(60, 230, 3)), int(rng.integers(40, 160)))
        objects.append(SceneObject(shapely.MultiPoint(points).convex_hull, CLUTTER, color))  # type: ignore[arg-type]

    buildings: list[shapely.Geometry] = []
    shadows: list[shapely.Geometry] = []
    sun = np.array([0.55, 0.85])
    for _ in range(rng.poisson(area / 450)):
        center = rng.uniform(0, (width, height))
        angle = float(rng.choice([0.0, 90.0, rng.uniform(0, 180)]))
        length, breadth = rng.uniform(8, 26, 2) * metre
        shape = _box(center[0], center[1], length, breadth, angle)
        if rng.random() < 0.4:  # L-shaped houses
            (x, y), (length, breadth) = center + rng.normal(0, 4 * metre, 2), rng.uniform(6, 14, 2) * metre
            shape = shape.union(_box(x, y, length, breadth, angle))
        if shape.intersects(road_union) or any(shape.distance(b) < 2 * metre for b in buildings):
            continue
        buildings.append(shape)
        roof = _ROOFS[int(rng.integers(len(_ROOFS)))]
        objects.append(SceneObject(shape, BUILDING, roof))
        offset = sun * rng.uniform(3, 12) * metre
        shadows.append(shapely.union(shape, affinity.translate(shape, *offset)).convex_hull.difference(shape))

    for _ in range(rng.poisson(area / 250)):
        cluster = rng.uniform(0, (width, height))
        for _ in range(int(rng.integers(1, 6))):
            center = cluster + rng.normal(0, 4 * metre, 2)
            crown = shapely.Point(*center).buffer(rng.uniform(1.5, 4.5) * metre)
            if any(crown.intersects(b) for b in buildings):
                continue
            shade = int(rng.integers(-12, 12))
            objects.append(SceneObject(crown, TREE, tuple(int(c + shade) for c in _BASE[TREE])))  # type: ignore[arg-type]
            shadows.append(affinity.translate(crown, *(sun * 2.5 * metre)).difference(crown))

    for line, axis in roads:
        for _ in range(rng.poisson(line.length / metre / 25)):
            along = rng.uniform(0, line.length)
            across = rng.choice([-1.6, 1.6]) * metre
            x, y = line.interpolate(along).coords[0]
            cx, cy = (x + across, y) if axis == 0 else (x, y + across)
            car = _box(cx, cy, 4.5 * metre, 1.9 * metre, 90.0 if axis == 0 else 0.0)
            color = (*(int(c) for c in rng.integers(20, 240, 3)), 60)
            objects.append(SceneObject(car, CAR, color))  # type: ignore[arg-type]

    coarse = rng.normal(0, 10, (4, height // 32 + 2, width // 32 + 2)).astype(np.float32)
    shadow = shapely.union_all(shadows) if shadows else shapely.Polygon()
    return Scene(height, width, seed, tuple(objects), shadow, coarse)


def _bilinear(grid: npt.NDArray[np.float32], rows: npt.NDArray[np.float64], cols: npt.NDArray[np.float64]) -> Any:
    """Sample (C, h, w) `grid` at fractional (rows, cols) coordinates, bilinearly."""
    r0, c0 = np.floor(rows).astype(int), np.floor(cols).astype(int)
    fr, fc = (rows - r0)[:, None], (cols - c0)[None, :]
    top = grid[:, r0][:, :, c0] * (1 - fc) + grid[:, r0][:, :, c0 + 1] * fc
    bottom = grid[:, r0 + 1][:, :, c0] * (1 - fc) + grid[:, r0 + 1][:, :, c0 + 1] * fc
    return top * (1 - fr) + bottom * fr


def render(scene: Scene, top: int, bottom: int) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """Image (4, h, W) uint8 (R, G, B, NIR, never 0) and label (h, W) uint8 of rows [top, bottom) of a scene."""
    rows, width = bottom - top, scene.width
    transform = Affine(1.0, 0.0, 0.0, 0.0, 1.0, float(top))
    window = shapely.box(-1, top - 1, width + 1, bottom + 1)
    visible = [(index, o) for index, o in enumerate(scene.objects) if o.shape.intersects(window)]
    ids = np.zeros((rows, width), dtype=np.int32)  # 0 = ground (low vegetation), else object index + 1
    if visible:
        shapes = ((o.shape, index + 1) for index, o in visible)
        ids = rasterize(shapes, out_shape=(rows, width), transform=transform, fill=0, dtype="int32")
    labels = np.array([LOW_VEGETATION] + [o.label for o in scene.objects], dtype=np.uint8)
    colors = np.array([_BASE[LOW_VEGETATION]] + [o.color for o in scene.objects], dtype=np.float32)
    texture = np.array([_TEXTURE[LOW_VEGETATION]] + [_TEXTURE[o.label] for o in scene.objects], dtype=np.float32)
    label = labels[ids]
    rng = np.random.default_rng([scene.seed, top])
    image = np.moveaxis(colors[ids], -1, 0)
    image += _bilinear(scene.coarse_noise, np.arange(top, bottom) / 32, np.arange(width) / 32)
    image += rng.normal(0, 1, (4, rows, width)).astype(np.float32) * texture[ids]
    if not scene.shadows.is_empty and scene.shadows.intersects(window):
        shade = rasterize([(scene.shadows, 1)], out_shape=(rows, width), transform=transform, dtype="uint8")
        image[:, shade == 1] *= 0.5
    return np.clip(image, 1, 255).astype(np.uint8), label


def _strips(height: int) -> Iterator[tuple[int, int]]:
    for top in range(0, height, _STRIP_ROWS):
        yield top, min(top + _STRIP_ROWS, height)


def _erode(label: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """True on pixels within one pixel of a class change (the boundaries ISPRS eroded labels leave out)."""
    edge = np.zeros(label.shape, dtype=bool)
    edge[1:] |= label[1:] != label[:-1]
    edge[:-1] |= label[1:] != label[:-1]
    edge[:, 1:] |= label[:, 1:] != label[:, :-1]
    edge[:, :-1] |= label[:, 1:] != label[:, :-1]
    return edge


def write_raster_pair(
    image_path: Path,
    label_path: Path,
    size: int | tuple[int, int],
    seed: int = 0,
    gsd: float | None = None,
    crs: str = "EPSG:32632",
    nodata_corner: bool = False,
    progress: Progress | None = None,
) -> None:
    """Write a scene as a georeferenced, tiled 4-band GeoTIFF and a class-index label GeoTIFF.

    Args:
        image_path: the image GeoTIFF (R, G, B, NIR uint8; no-data 0).
        label_path: the label GeoTIFF (class indices, no-data 255).
        size: (height, width) in pixels, or one number for both.
        seed: scene seed.
        gsd: ground sample distance in metres; `default_gsd` when None.
        crs: the CRS written.
        nodata_corner: blank a triangle in the top-left corner, as at the edge of an orthophoto's footprint.
        progress: told the rows written so far (and asked whether to stop).
    """
    height, width = (size, size) if isinstance(size, int) else size
    gsd = default_gsd(height, width) if gsd is None else gsd
    scene = make_scene(height, width, seed, gsd)
    transform = Affine(gsd, 0.0, 500000.0 + 1000.0 * seed, 0.0, -gsd, 5400000.0)
    common = {"driver": "GTiff", "height": height, "width": width, "crs": crs, "transform": transform}
    tiled = {"tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate"}
    with (
        rasterio.open(image_path, "w", count=4, dtype="uint8", nodata=0, **common, **tiled) as image_out,
        rasterio.open(label_path, "w", count=1, dtype="uint8", nodata=IGNORE_INDEX, **common, **tiled) as label_out,
    ):
        image_out.descriptions = BANDS
        for top, bottom in _strips(height):
            image, label = render(scene, top, bottom)
            if nodata_corner:
                rows = np.arange(top, bottom)[:, None]
                blank = rows + np.arange(width)[None, :] < min(height, width) // 3
                image[:, blank], label[blank] = 0, IGNORE_INDEX
            window = rasterio.windows.Window(0, top, width, bottom - top)
            image_out.write(image, window=window)
            label_out.write(label[None], window=window)
            if progress is not None:
                progress.report(bottom, height, "rows written")
                check_canceled(progress)


def _write_png_or_tif(path: Path, array: npt.NDArray[np.uint8]) -> None:
    driver = "PNG" if path.suffix == ".png" else "GTiff"
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {"height": array.shape[1], "width": array.shape[2], "count": array.shape[0], "dtype": "uint8"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver=driver, **profile) as dst:
            dst.write(array)


def _render_all(size: tuple[int, int], seed: int) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    scene = make_scene(*size, seed=seed)
    parts = [render(scene, top, bottom) for top, bottom in _strips(size[0])]
    return np.concatenate([p[0] for p in parts], axis=1), np.concatenate([p[1] for p in parts], axis=0)


#: Synthetic class → UAVid class: impervious → road, car → static car, clutter → clutter.
_TO_UAVID = np.array([1, 0, 3, 2, 5, 7], dtype=np.uint8)
#: Synthetic class → LoveDA class: impervious and cars → road, low vegetation → agriculture, clutter → barren.
_TO_LOVEDA = np.array([2, 1, 6, 5, 2, 4], dtype=np.uint8)
#: Largest tile side `write_synthetic` accepts, in pixels (a tile is rendered in memory).
MAX_SIZE = 8192
#: Most tiles `write_synthetic` writes in the UAVid and LoveDA layouts.
MAX_TILES = 200


def write_synthetic(
    out_dir: str | Path,
    layout: DatasetName = "raster",
    size: int = 512,
    seed: int = 0,
    tiles: int = 6,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Write a synthetic dataset in the layout of one of the datasets cmt-geo reads.

    The folder appears only when complete (see `atomic_output`); `overwrite` replaces only a synthetic dataset
    that cmt-geo wrote earlier.

    Args:
        out_dir: the folder to create (never the working directory or one of its parents).
        layout: "raster" (`images/scene.tif` + `labels/scene.tif`, georeferenced, read by `RasterSegmentation`) or
            a benchmark layout.
        size: tile (or frame) height and width in pixels, 32..`MAX_SIZE`.
        seed: the same seed writes the same dataset (a non-negative integer).
        tiles: tiles (frames) to write in a benchmark layout; two thirds go to training, the rest to the
            labelled evaluation split (and, for UAVid and LoveDA, one unlabelled test tile).
        overwrite: replace a synthetic dataset written earlier.
        progress: told the tiles written so far.

    Returns:
        The dataset folder.

    Raises:
        ConfigError: an unknown layout, a size, seed or tile count out of range.
        OutputExistsError: the folder is not empty and `overwrite` is False, or is not a synthetic dataset.
    """
    if layout not in DATASET_NAMES:
        raise ConfigError(f"layout={layout!r} is not a layout; use one of {', '.join(DATASET_NAMES)}")
    if isinstance(size, bool) or not isinstance(size, int) or not 32 <= size <= MAX_SIZE:
        raise ConfigError(f"size={size!r} is out of range; use a tile side of 32..{MAX_SIZE} pixels")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ConfigError(f"seed={seed!r} must be an integer in 0..{2**32 - 1}")
    if isinstance(tiles, bool) or not isinstance(tiles, int) or not 2 <= tiles <= MAX_TILES:
        raise ConfigError(f"tiles={tiles!r} is out of range; use 2..{MAX_TILES} (one to train on, one to evaluate)")
    plan = _tile_plan(layout, tiles)
    progress = progress or NullProgress()
    with atomic_output(out_dir, overwrite=overwrite, folder_kind="synthetic-dataset") as staging:
        for index, (name, split) in enumerate(plan):
            _write_tile(staging, layout, (name, split), size=size, seed=seed * 1000 + index, progress=progress)
            progress.report(index + 1, len(plan), "tiles written")
            check_canceled(progress)
    return Path(out_dir)


def _tile_plan(layout: DatasetName, tiles: int) -> list[tuple[str, str]]:
    """(tile name, split) of every tile of a layout: two thirds train, the rest test, plus one unlabelled tile for
    UAVid and LoveDA (one scene for "raster")."""
    if layout == "raster":
        return [("scene", "train")]
    train = math.ceil(tiles * 2 / 3)
    splits = ["train"] * train + ["test"] * (tiles - train)
    if layout in ("vaihingen", "potsdam"):
        official = dataset_class(layout).official  # type: ignore[attr-defined]
        if train > len(official["train"]) or tiles - train > len(official["test"]):
            most = len(official["train"]) + len(official["test"])
            raise ConfigError(f"tiles={tiles} is more than the {layout} layout has room for; use at most {most}")
        return [(official[split][splits[:index].count(split)], split) for index, split in enumerate(splits)]
    splits.append("unlabelled")
    if layout == "uavid":
        return [(f"seq{index // 2 + 1}/{index % 2 * 100:06d}", split) for index, split in enumerate(splits)]
    return [(f"Urban/{index}", split) for index, split in enumerate(splits)]


def _write_tile(
    root: Path, layout: DatasetName, tile: tuple[str, str], *, size: int, seed: int, progress: Progress
) -> None:
    """Render tile (name, split) and write its image and labels where the layout's dataset class reads them."""
    kind = dataset_class(layout)
    paths = kind.layout_paths(*tile)
    if layout == "raster" and paths.label is not None:
        for path in (root / paths.image, root / paths.label):
            path.parent.mkdir(parents=True, exist_ok=True)
        write_raster_pair(
            root / paths.image, root / paths.label, size, seed=seed, nodata_corner=True, progress=progress
        )
        return
    image, label = _render_all((size, size), seed)
    _write_png_or_tif(root / paths.image, np.ascontiguousarray(image[[BANDS.index(b) for b in paths.bands]]))
    if paths.label is None:
        return
    classes = {"uavid": _TO_UAVID, "loveda": _TO_LOVEDA}.get(layout, np.arange(len(CLASSES), dtype=np.uint8))[label]
    coding = kind.label_coding_of()
    _write_png_or_tif(root / paths.label, coding.encode(classes))
    if paths.eroded is not None:
        eroded = np.where(_erode(label), IGNORE_INDEX, classes).astype(np.uint8)
        _write_png_or_tif(root / paths.eroded, coding.encode(eroded))
