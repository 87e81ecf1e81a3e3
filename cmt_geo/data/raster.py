"""The user's own rasters: GeoTIFF imagery with labels as class rasters or vector polygons, in any CRS."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.features import rasterize
from rasterio.windows import Window

from cmt_geo.card import default_colors
from cmt_geo.data.base import SampleTransform, SplitOptions, TiledSegmentationDataset, load_split
from cmt_geo.data.labels import IGNORE_INDEX, RGB, LabelCoding, nodata_class_warning
from cmt_geo.data.tiles import CheckOptions, CheckPlan, LayoutPaths, Problem, TileFiles, missing_labels
from cmt_geo.errors import CmtGeoError, ConfigError, DatasetNotFoundError, InvalidLabelError, InvalidRasterError
from cmt_geo.io.raster import open_raster, read_header

logger = logging.getLogger(__name__)

#: The folders of images and class rasters in a dataset folder (the layout `write_synthetic` writes).
IMAGE_FOLDER, LABEL_FOLDER = "images", "labels"
RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".jp2", ".img")
VECTOR_SUFFIXES = (".gpkg", ".shp", ".parquet", ".geoparquet", ".geojson", ".json", ".fgb")


def _paths(given: str | Path | Sequence[str | Path] | None) -> list[Path]:
    """One path or several, as a list of expanded paths."""
    return [Path(p).expanduser() for p in ([given] if isinstance(given, str | Path) else given or [])]


def _rasters_in(paths: Sequence[Path]) -> dict[str, Path]:
    """Raster files named or found directly in folders, keyed by file stem."""
    found: dict[str, Path] = {}
    for path in paths:
        candidates = sorted(path.iterdir()) if path.is_dir() else [path]
        for candidate in candidates:
            if candidate.suffix.lower() in RASTER_SUFFIXES and candidate.is_file():
                found[candidate.stem] = candidate
    return found


def read_vector(path: Path) -> Any:
    """A GeoDataFrame of a vector file (GeoPackage, Shapefile, GeoParquet, GeoJSON, FlatGeobuf).

    Raises:
        DatasetNotFoundError: the file does not exist.
        InvalidLabelError: the file cannot be read as vector data.
    """
    import geopandas as gpd

    if not path.is_file():
        raise DatasetNotFoundError(f"vector labels {path} do not exist; give the file of class polygons")
    try:
        if path.suffix.lower() in (".parquet", ".geoparquet"):
            return gpd.read_parquet(path)
        return gpd.read_file(path, engine="pyogrio")
    except Exception as error:  # pyogrio, pyarrow and fiona raise their own types for a bad file
        message = " ".join(str(error).split())
        raise InvalidLabelError(f"cannot read vector labels {path} ({message}); replace the file") from None


def raster_layout(images: Sequence[Path], labels: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """Image and label paths, where one folder holding `images/` (and `labels/`) stands for both (the layout
    `write_synthetic` writes)."""
    if len(images) == 1 and images[0].is_dir() and not _rasters_in(images) and (images[0] / IMAGE_FOLDER).is_dir():
        root = images[0]
        labels = labels or ([root / LABEL_FOLDER] if (root / LABEL_FOLDER).exists() else [])
        return [root / IMAGE_FOLDER], list(labels)
    return list(images), list(labels)


def _label_nodata(tiles: Sequence[TileFiles]) -> dict[Path, float | None]:
    """The no-data value of each readable label raster (an unreadable one is reported by `inspect_tiles`)."""
    values = {}
    for files in tiles:
        if files.label is not None:
            with contextlib.suppress(InvalidRasterError):
                values[files.label] = read_header(files.label).nodata
    return values


def label_coding(
    classes: Sequence[str],
    label_nodata: Mapping[Path, float | None],
    nodata: Literal["class", "ignore"],
    unknown: Literal["error", "ignore"],
) -> tuple[LabelCoding, list[str]]:
    """The coding of class rasters holding class indices, and warnings about no-data values that are classes.

    A label raster's no-data value that is not a class is ignored; one that is a class index is kept as that class
    (`nodata="class"`) or ignored (`nodata="ignore"`), with a warning either way.
    """
    ignore, warnings = {IGNORE_INDEX}, []
    for path, value in label_nodata.items():
        if value is None or not float(value).is_integer():
            continue
        if 0 <= value < len(classes):
            warning = nodata_class_warning(int(value), classes[int(value)], ignored=nodata == "ignore")
            warnings.append(f"{path} {warning}")
            if nodata == "class":
                continue
        ignore.add(int(value))
    return LabelCoding.values(range(len(classes)), ignore=sorted(ignore), unknown=unknown), warnings


class VectorLabels:
    """Class polygons from a GeoPackage, Shapefile, GeoParquet or GeoJSON, rasterized window by window.

    Where polygons overlap, the one that comes later in the file wins.

    Args:
        path: the vector file.
        class_column: attribute holding each polygon's class: a class name, or a class index.
        classes: class names, in index order.
        crs: the dataset CRS polygons are reprojected to.
    """

    def __init__(self, path: Path, class_column: str, classes: Sequence[str], crs: CRS) -> None:
        frame = read_vector(path)
        if class_column not in frame.columns:
            columns = [c for c in frame.columns if c != frame.geometry.name]
            raise ConfigError(f"{path} has no attribute {class_column!r}; pass class_column= one of {columns}")
        if frame.crs is None:
            raise InvalidLabelError(f"{path} has no CRS; assign one (e.g. with ogr2ogr -a_srs) so it can be placed")
        frame = frame[frame.geometry.notna() & ~frame.geometry.is_empty].to_crs(crs)
        self.class_ids = self._class_ids(frame[class_column].to_numpy(), classes, path, class_column)
        self.geometries = frame.geometry.to_numpy()
        self._tree: shapely.STRtree | None = None

    @staticmethod
    def _class_ids(values: npt.NDArray[Any], classes: Sequence[str], path: Path, column: str) -> npt.NDArray[np.uint8]:
        if values.dtype.kind in "iu":
            bad = values[(values < 0) | (values >= len(classes))]
            if bad.size:
                raise InvalidLabelError(
                    f"{path} attribute {column!r} holds class index {bad[0]}, outside 0..{len(classes) - 1}; "
                    "fix the attribute or pass more classes"
                )
            return values.astype(np.uint8)
        lookup = {name: index for index, name in enumerate(classes)}
        unknown = sorted({str(v) for v in values if v not in lookup})
        if unknown:
            raise InvalidLabelError(
                f"{path} attribute {column!r} holds classes {unknown[:5]} not among {list(classes)}; "
                "add them to classes or fix the attribute"
            )
        return np.array([lookup[v] for v in values], dtype=np.uint8)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_tree"] = None
        return state

    def rasterize(self, transform: Affine, height: int, width: int, fill: int) -> npt.NDArray[np.uint8]:
        """Class indices (height, width) of the window with this transform; `fill` where no polygon lies."""
        if self._tree is None:
            self._tree = shapely.STRtree(self.geometries)
        x0, y0 = transform @ (0, 0)
        x1, y1 = transform @ (width, height)
        hits = self._tree.query(shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
        if hits.size == 0:
            return np.full((height, width), fill, dtype=np.uint8)
        hits.sort()
        shapes = zip(self.geometries[hits], self.class_ids[hits].tolist(), strict=True)
        return rasterize(shapes, out_shape=(height, width), transform=transform, fill=fill, dtype="uint8")


def _vector_problems(
    path: Path, column: str, classes: Sequence[str] | None, images: Sequence[TileFiles]
) -> list[Problem]:
    """Problems of vector labels: unreadable, no class attribute, no CRS, classes that are not among `classes`."""
    try:
        if classes is None:
            frame = read_vector(path)
            if column not in frame.columns:
                raise ConfigError(f"has no attribute {column!r}; pass class_column= one of {list(frame.columns)}")
            if frame.crs is None:
                raise InvalidLabelError("has no CRS; assign one (e.g. with ogr2ogr -a_srs) so it can be placed")
        else:
            crs = read_header(images[0].image).crs if images else None
            VectorLabels(path, column, classes, crs or CRS.from_epsg(4326))
    except DatasetNotFoundError as error:
        return [Problem("missing", path, str(error))]
    except CmtGeoError as error:
        return [Problem("labels", path, str(error).removeprefix(f"{path} "))]
    return []


class RasterSegmentation(TiledSegmentationDataset):
    """The user's GeoTIFFs with labels as class rasters (values 0..K-1) or vector polygons with a class attribute.

    Rasters may be in different CRSs and resolutions: they are warped on the fly to the dataset CRS and resolution
    (the first raster's unless given). Image no-data pixels and pixels outside every polygon (unless `background`
    is set) get the ignore index.

    Args:
        images: GeoTIFF files, or folders holding them, or one folder holding `images/` and `labels/` folders.
        labels: class rasters (files or folders) matched to images by file name, or one vector file.
        classes: class names, in index order.
        colors: one RGB colour per class; spread around the hue circle when None.
        class_column: with vector labels, the attribute holding the class name or index.
        background: with vector labels, the class of pixels outside every polygon; ignored when None.
        nodata: image no-data value; the rasters' own when None.
        bands: 1-based image bands to read; all when None.
        crs: dataset CRS (anything rasterio understands, e.g. "EPSG:32632"); the first raster's when None.
        res: dataset resolution in CRS units; the first raster's when None.
        split: "train", "val" (carved from the non-test images) or "test".
        test_images: file stems of the images that form the test split.
        split_options: how validation images are carved.
        label_nodata: what a label raster's no-data value means when it is also a class index: "class" keeps
            those pixels as that class, "ignore" ignores them (a warning names the file and class either way).
        unknown_labels: what a label value that is not a class does: raise, or become ignored pixels.
        transforms: applied to every sample.
        compact: keep the image in its stored dtype and the mask as uint8 (see `TiledSegmentationDataset`).
    """

    name = "raster"

    def __init__(
        self,
        images: str | Path | Sequence[str | Path],
        labels: str | Path | Sequence[str | Path] | None = None,
        classes: Sequence[str] = (),
        colors: Sequence[RGB] | None = None,
        class_column: str = "class",
        background: int | None = None,
        nodata: float | None = None,
        bands: Sequence[int] | None = None,
        crs: str | CRS | None = None,
        res: float | tuple[float, float] | None = None,
        split: Literal["train", "val", "test"] = "train",
        test_images: Sequence[str] = (),
        split_options: SplitOptions | None = None,
        label_nodata: Literal["class", "ignore"] = "class",
        unknown_labels: Literal["error", "ignore"] = "error",
        transforms: SampleTransform | None = None,
        compact: bool = False,
    ) -> None:
        if not classes:
            raise ConfigError("RasterSegmentation needs classes=[...], the class names in index order")
        if colors is not None and len(colors) != len(classes):
            raise ConfigError(f"got {len(colors)} colours for {len(classes)} classes; give one colour per class")
        if background is not None and not 0 <= background < len(classes):
            raise ConfigError(f"background={background} is not a class index; use 0..{len(classes) - 1} or None")
        self.classes = tuple(classes)
        self.colors = tuple(colors) if colors is not None else default_colors(len(classes))
        image_paths, label_paths = raster_layout(_paths(images), _paths(labels))
        vector = len(label_paths) == 1 and label_paths[0].suffix.lower() in VECTOR_SUFFIXES
        found, problems = self.pair_rasters(
            image_paths,
            [] if vector else label_paths,
            test_images=test_images,
            bands=bands,
            labelled=bool(label_paths),
        )
        if vector:
            found = [replace(f, label=None) for f in found]
        target_crs = CRS.from_user_input(crs) if crs is not None else None
        resolution = (float(res), float(res)) if isinstance(res, int | float) else res
        tiles, dataset_crs, dataset_res = load_split(
            found,
            problems,
            split=split,
            options=split_options or SplitOptions(),
            label_bands=1,
            dataset=self.name,
            root=image_paths[0],
            labels=label_paths[0] if label_paths else None,
            crs=target_crs,
            res=resolution,
            georeferenced=True,
        )
        if nodata is not None:
            tiles = [replace(tile, nodata=nodata) for tile in tiles]
        self.background = background
        self.vector_labels: VectorLabels | None = None
        coding = None
        if vector:
            if dataset_crs is None:
                raise InvalidLabelError(
                    f"vector labels {label_paths[0]} need georeferenced images; the images have no CRS"
                )
            self.vector_labels = VectorLabels(label_paths[0], class_column, self.classes, dataset_crs)
        elif label_paths:
            nodata_of = _label_nodata([tile.files for tile in tiles])
            coding, warnings = label_coding(self.classes, nodata_of, label_nodata, unknown_labels)
            for warning in warnings:
                logger.warning("%s", warning)
        band_names = _band_names(tiles[0].files.image, tiles[0].image_bands)
        super().__init__(
            tiles, coding, band_names, crs=dataset_crs, res=dataset_res, transforms=transforms, compact=compact
        )

    @classmethod
    def pair_rasters(
        cls,
        images: Sequence[Path],
        labels: Sequence[Path],
        *,
        test_images: Sequence[str] = (),
        bands: Sequence[int] | None = None,
        labelled: bool = True,
    ) -> tuple[list[TileFiles], list[Problem]]:
        """The image rasters with their class rasters (matched by file stem), and the pairing problems.

        Raises:
            DatasetNotFoundError: no raster among `images`.
        """
        found_images = _rasters_in(images)
        if not found_images:
            raise DatasetNotFoundError(
                f"no rasters ({', '.join(RASTER_SUFFIXES)}) in {[str(p) for p in images]}; point images= at "
                "GeoTIFF files or their folder"
            )
        absent = [path for path in labels if not path.exists()]
        if absent:
            problem = Problem("missing", absent[0], "labels do not exist; give the class raster or its folder")
            return cls.pair_rasters(images, [], test_images=test_images, bands=bands, labelled=False)[0], [problem]
        found_labels = _rasters_in(labels)
        if len(found_images) == 1 and len(found_labels) == 1:
            found_labels = {next(iter(found_images)): next(iter(found_labels.values()))}
        unknown = sorted(set(test_images) - set(found_images))
        if unknown:
            raise ConfigError(f"test_images {unknown} are not among the images {sorted(found_images)[:10]}")
        chosen = tuple(bands) if bands else None
        found = [
            TileFiles(stem, stem, "test" if stem in test_images else "train", path, found_labels.get(stem), chosen)
            for stem, path in sorted(found_images.items())
        ]
        problems = [
            Problem("missing", path, f"label has no image; name it like an image (e.g. {next(iter(found_images))})")
            for stem, path in sorted(found_labels.items())
            if stem not in found_images
        ]
        if labelled and labels:
            problems += missing_labels(found, ("train", "test"), "give a class raster with the image's file name")
        return found, problems

    @classmethod
    def plan_check(cls, root: Path, options: CheckOptions) -> CheckPlan:
        """The images with their class rasters, or the images alone with the vector labels read and validated.

        Without `options.classes`, class-raster values are counted as they are (classes named by value).
        """
        options.refuse(cls.name, "labels_kind")
        images, labels = raster_layout([root], [options.labels] if options.labels is not None else [])
        vector = len(labels) == 1 and labels[0].suffix.lower() in VECTOR_SUFFIXES
        found, problems = cls.pair_rasters(images, [] if vector else labels, labelled=bool(labels) and not vector)
        classes = options.classes or tuple(str(value) for value in range(IGNORE_INDEX))
        if vector:
            problems += _vector_problems(labels[0], options.class_column, options.classes, found)
            return CheckPlan(found, problems=problems)
        coding, _ = label_coding(classes, _label_nodata(found), options.label_nodata, "error")
        return CheckPlan(found, problems=problems, coding=coding, classes=classes)

    @classmethod
    def layout_paths(cls, name: str, split: str) -> LayoutPaths:
        """Where image `name` and its class raster go in a dataset folder (any split)."""
        return LayoutPaths(f"{IMAGE_FOLDER}/{name}.tif", (), f"{LABEL_FOLDER}/{name}.tif")

    def _read_label(self, tile: int, window: Window) -> npt.NDArray[np.uint8]:
        if self.vector_labels is None:
            return super()._read_label(tile, window)
        transform = self.tiles[tile].transform @ Affine.translation(window.col_off, window.row_off)
        fill = IGNORE_INDEX if self.background is None else self.background
        return self.vector_labels.rasterize(transform, int(window.height), int(window.width), fill)


def _band_names(image: Path, bands: Sequence[int]) -> tuple[str, ...]:
    """Names of the image bands a model trained on the dataset takes (checkpoints keep them, and `cmtgeo predict`
    matches an input's bands by them, ignoring case): the raster's band descriptions where each chosen band's is
    unique among all of them, else band1, band2, ... by band number."""
    with open_raster(image) as src:
        descriptions = [(description or "").strip() for description in src.descriptions]
    named = [descriptions[band - 1] for band in bands]
    folded = [description.lower() for description in descriptions]
    if all(name and folded.count(name.lower()) == 1 for name in named):
        return tuple(named)
    return tuple(f"band{band}" for band in bands)
