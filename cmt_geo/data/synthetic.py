"""Procedural synthetic aerial scenes: buildings with shadows, roads, trees, low vegetation, cars and clutter.

A scene is drawn as vector objects, then rendered strip by strip, so any size fits in memory. The same seed gives
the same scene. Classes follow the ISPRS scheme; writers save a georeferenced GeoTIFF pair or the Vaihingen,
Potsdam, UAVid and LoveDA layouts.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import rasterio
import shapely
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning
from rasterio.features import rasterize
from shapely import affinity

from cmt_geo.data.isprs import ISPRSDataset, Potsdam, Vaihingen
from cmt_geo.data.labels import IGNORE_INDEX
from cmt_geo.data.uavid import UAVid
from cmt_geo.errors import ConfigError, OutputExistsError

Layout = Literal["raster", "vaihingen", "potsdam", "uavid", "loveda"]
LAYOUTS: tuple[Layout, ...] = ("raster", "vaihingen", "potsdam", "uavid", "loveda")

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


class _Outputs:
    """Writes files into a temporary folder beside the target and moves them in place only when all are done."""

    def __init__(self, out_dir: Path, overwrite: bool) -> None:
        self.out_dir = out_dir
        if out_dir.exists() and not out_dir.is_dir():
            raise OutputExistsError(
                f"{out_dir} is a file, not a folder; choose another output folder or remove the file"
            )
        if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
            raise OutputExistsError(f"{out_dir} exists and is not empty; pass --overwrite to replace it")
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        self.staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))

    def path(self, relative: str) -> Path:
        path = self.staging / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def commit(self) -> None:
        if self.out_dir.exists():
            shutil.rmtree(self.out_dir)
        os.replace(self.staging, self.out_dir)

    def abort(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


def write_raster_pair(
    image_path: Path,
    label_path: Path,
    size: int | tuple[int, int],
    seed: int = 0,
    gsd: float | None = None,
    crs: str = "EPSG:32632",
    nodata_corner: bool = False,
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


def _write_png_or_tif(path: Path, array: npt.NDArray[np.uint8]) -> None:
    driver = "PNG" if path.suffix == ".png" else "GTiff"
    profile = {"height": array.shape[1], "width": array.shape[2], "count": array.shape[0], "dtype": "uint8"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver=driver, **profile) as dst:
            dst.write(array)


def _render_all(size: tuple[int, int], seed: int) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    scene = make_scene(*size, seed=seed)
    parts = [render(scene, top, bottom) for top, bottom in _strips(size[0])]
    return np.concatenate([p[0] for p in parts], axis=1), np.concatenate([p[1] for p in parts], axis=0)


def _colored(label: npt.NDArray[np.uint8], colors: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    return np.ascontiguousarray(np.moveaxis(colors[label], -1, 0))


#: Synthetic class → UAVid class: impervious → road, car → static car, clutter → clutter.
_TO_UAVID = np.array([1, 0, 3, 2, 5, 7], dtype=np.uint8)
#: Synthetic class → LoveDA label value: impervious and cars → road, low vegetation → agriculture, clutter → barren.
_TO_LOVEDA = np.array([3, 2, 7, 6, 3, 5], dtype=np.uint8)


def write_synthetic(
    out_dir: str | Path,
    layout: Layout = "raster",
    size: int = 512,
    seed: int = 0,
    tiles: int = 6,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic dataset.

    Args:
        out_dir: the folder to create; refused when it exists and is not empty, unless `overwrite`.
        layout: "raster" (image.tif + label.tif, georeferenced) or a benchmark layout.
        size: tile (or frame) height and width in pixels.
        seed: the same seed writes the same dataset.
        tiles: tiles (frames) to write in a benchmark layout; two thirds go to training, the rest to the
            labelled evaluation split (and, for UAVid and LoveDA, one unlabelled test tile).
        overwrite: replace an existing non-empty folder.

    Returns:
        The dataset folder.

    Raises:
        ConfigError: an unknown layout or too few tiles.
        OutputExistsError: the folder is not empty and `overwrite` is False, or `out_dir` is a file.
    """
    if layout not in LAYOUTS:
        raise ConfigError(f"layout={layout!r} is not a layout; use one of {', '.join(LAYOUTS)}")
    if tiles < 2:
        raise ConfigError(f"tiles={tiles} is too few; use at least 2 (one to train on, one to evaluate)")
    out = _Outputs(Path(out_dir), overwrite)
    try:
        if layout == "raster":
            write_raster_pair(out.path("image.tif"), out.path("label.tif"), size, seed, nodata_corner=True)
        else:
            _write_layout(out, layout, size, seed, tiles)
        out.commit()
    except BaseException:
        out.abort()
        raise
    return Path(out_dir)


def _write_layout(out: _Outputs, layout: Layout, size: int, seed: int, tiles: int) -> None:
    train = math.ceil(tiles * 2 / 3)
    if layout in ("vaihingen", "potsdam"):
        official = (Vaihingen if layout == "vaihingen" else Potsdam).official
        if train > len(official["train"]) or tiles - train > len(official["test"]):
            most = len(official["train"]) + len(official["test"])
            raise ConfigError(f"tiles={tiles} is more than the {layout} layout has room for; use at most {most}")
    isprs = np.array(COLORS, dtype=np.uint8)
    for index in range(tiles):
        image, label = _render_all((size, size), seed * 1000 + index)
        split = "train" if index < train else "test"
        if layout in ("vaihingen", "potsdam"):
            names = (Vaihingen if layout == "vaihingen" else Potsdam).official
            name = names[split][index if split == "train" else index - train]
            colored = _colored(label, isprs)
            eroded = colored.copy()
            eroded[:, _erode(label)] = 0
            if layout == "vaihingen":
                irrg = image[[3, 0, 1]]
                _write_png_or_tif(out.path(f"top/top_mosaic_09cm_area{name}.tif"), np.ascontiguousarray(irrg))
                _write_png_or_tif(out.path(f"gts_for_participants/top_mosaic_09cm_area{name}.tif"), colored)
                _write_png_or_tif(out.path(f"top_mosaic_09cm_area{name}_noBoundary.tif"), eroded)
            else:
                _write_png_or_tif(out.path(f"4_Ortho_RGBIR/top_potsdam_{name}_RGBIR.tif"), image)
                _write_png_or_tif(out.path(f"5_Labels_all/top_potsdam_{name}_label.tif"), colored)
                _write_png_or_tif(out.path(f"5_Labels_all_noBoundary/top_potsdam_{name}_label_noBoundary.tif"), eroded)
        elif layout == "uavid":
            folder = "uavid_train" if split == "train" else "uavid_val"
            frame = f"{folder}/seq{index // 2 + 1}/%s/{index % 2 * 100:06d}.png"
            _write_png_or_tif(out.path(frame % "Images"), np.ascontiguousarray(image[:3]))
            _write_png_or_tif(out.path(frame % "Labels"), _colored(_TO_UAVID[label], np.array(UAVid.colors, np.uint8)))
        else:
            folder = "Train" if split == "train" else "Val"
            _write_png_or_tif(out.path(f"{folder}/Urban/images_png/{index}.png"), np.ascontiguousarray(image[:3]))
            _write_png_or_tif(out.path(f"{folder}/Urban/masks_png/{index}.png"), _TO_LOVEDA[label][None])
    if layout in ("uavid", "loveda"):
        image, _ = _render_all((size, size), seed * 1000 + tiles)
        relative = "uavid_test/seq99/Images/000000.png" if layout == "uavid" else f"Test/Urban/images_png/{tiles}.png"
        _write_png_or_tif(out.path(relative), np.ascontiguousarray(image[:3]))
