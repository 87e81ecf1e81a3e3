"""Tiles of a dataset: the files found on disk, their raster headers, and the problems found while inspecting them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

from affine import Affine

from cmt_geo.data.labels import LabelCoding
from cmt_geo.errors import CmtGeoError, ConfigError, DatasetNotFoundError, InvalidLabelError, InvalidRasterError
from cmt_geo.io.raster import RasterInfo, read_header

ProblemKind = Literal["missing", "unreadable", "size", "grid", "bands", "labels", "incomplete", "extra", "empty"]

_ERRORS: dict[ProblemKind, type[CmtGeoError]] = {
    "missing": DatasetNotFoundError,
    "unreadable": InvalidRasterError,
    "size": InvalidRasterError,
    "grid": InvalidRasterError,
    "bands": InvalidRasterError,
    "labels": InvalidLabelError,
    "incomplete": DatasetNotFoundError,
    "extra": DatasetNotFoundError,
    "empty": InvalidRasterError,
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset folder.

    Args:
        kind: missing (an image without its label or the reverse), unreadable, size (image and label differ),
            grid (image and label are georeferenced on different grids), bands (wrong band count), labels (unknown
            label colours or values), incomplete (official tiles absent), extra (a tile that is not part of the
            official dataset; skipped), empty (an image holding only no-data).
        path: the offending file or folder.
        message: what is wrong and what to do, on one line.
        fatal: False for warnings (a partial dataset is valid).
        split: the official split the problem belongs to; None when it concerns the whole folder.
    """

    kind: ProblemKind
    path: Path
    message: str
    fatal: bool = True
    split: str | None = None

    def error(self) -> CmtGeoError:
        """The exception that reports this problem."""
        return _ERRORS[self.kind](f"{self.path}: {self.message}")


@dataclass(frozen=True)
class TileFiles:
    """The files of one tile as found in a dataset folder.

    Args:
        name: tile name within the dataset (e.g. "area1", "2_10", "seq1/000000").
        group: the unit a validation split is carved by (the tile name, or a UAVid sequence).
        split: the official split the tile belongs to.
        image: path of the image raster.
        label: path of the label raster, None where the dataset withholds labels.
        image_bands: 1-based image band indexes to read, in output order; None reads every band.
        image_count: band count the image must have; None accepts any.
    """

    name: str
    group: str
    split: str
    image: Path
    label: Path | None
    image_bands: tuple[int, ...] | None = None
    image_count: int | None = None


@dataclass(frozen=True)
class CheckOptions:
    """What `check_dataset` needs besides the folder; each dataset refuses the options it has no use for.

    Args:
        labels: for "raster": the class raster, folder of class rasters, or vector file of class polygons.
        labels_kind: for ISPRS datasets: which labels the splits use ("auto", "full" or "eroded").
        classes: for "raster": class names in index order; label values (or vector classes) are checked against
            them and counted per class. Without them, raster label values are counted as they are.
        class_column: for "raster" vector labels: the attribute holding each polygon's class.
        label_nodata: for "raster": what a label raster's no-data value means when it is also a class index:
            "class" keeps those pixels as that class, "ignore" ignores them.
    """

    labels: Path | None = None
    labels_kind: Literal["auto", "full", "eroded"] = "auto"
    classes: tuple[str, ...] | None = None
    class_column: str = "class"
    label_nodata: Literal["class", "ignore"] = "class"

    def refuse(self, dataset: str, *names: str) -> None:
        """Raise when any of the option `names` differs from its default: `dataset` has no use for it."""
        defaults = CheckOptions()
        for name in names:
            if getattr(self, name) != getattr(defaults, name):
                flag = "--" + name.replace("_", "-")
                raise ConfigError(f"{name} ({flag}) does not apply to {dataset}; leave it out")


class LayoutPaths(NamedTuple):
    """Where one tile's files go in a dataset's official layout, relative to its root.

    Args:
        image: the image file.
        bands: band names of the image file, in order.
        label: the label file; None where the dataset withholds labels.
        eroded: the eroded-boundary label file, for datasets that have one.
    """

    image: str
    bands: tuple[str, ...]
    label: str | None
    eroded: str | None = None


def png_layout(split_of_folder: dict[str, str], split: str, image: str, labels_folder: tuple[str, str]) -> LayoutPaths:
    """Paths of an RGB PNG tile whose label PNG sits in a sibling folder (none for the "unlabelled" split).

    Args:
        split_of_folder: the split each official folder serves as.
        split: the tile's split.
        image: the image path, with "{folder}" where the official folder of `split` goes.
        labels_folder: (image folder, label folder) names, e.g. ("Images", "Labels").
    """
    folder = next(name for name, role in split_of_folder.items() if role == split)
    path = image.format(folder=folder)
    images, labels = labels_folder
    label = None if split == "unlabelled" else path.replace(f"/{images}/", f"/{labels}/")
    return LayoutPaths(path, ("red", "green", "blue"), label)


@dataclass
class CheckPlan:
    """What a dataset asks `check_dataset` to verify.

    Args:
        loaded: the tiles the dataset loads by default (they make the split and class summaries).
        extra: other files to verify, as tiles (e.g. ISPRS labels of the kind the default does not load).
        problems: problems of the folder layout found so far.
        coding: how label rasters store classes; None when label values are not known (counted raw).
        classes: class names, in index order (empty when unknown).
    """

    loaded: list[TileFiles]
    extra: list[TileFiles] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    coding: LabelCoding | None = None
    classes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Tile:
    """A tile ready to read: its files, size and where it sits in the dataset's coordinate space.

    Args:
        files: the tile's files.
        height: rows, in the dataset's grid.
        width: columns, in the dataset's grid.
        transform: pixel → dataset coordinates (real coordinates, or a pixel-space layout for ungeoreferenced data).
        image_bands: 1-based band indexes read from the image, in output order.
        nodata: image value that marks pixels without data, or None.
        warp: True when the image must be warped (another CRS or resolution than the dataset's).
    """

    files: TileFiles
    height: int
    width: int
    transform: Affine
    image_bands: tuple[int, ...]
    nodata: float | None = None
    warp: bool = False

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) in dataset coordinates."""
        x0, y0 = self.transform @ (0, 0)
        x1, y1 = self.transform @ (self.width, self.height)
        return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


def inspect_tiles(
    found: Sequence[TileFiles], label_bands: int
) -> tuple[list[tuple[TileFiles, RasterInfo]], list[Problem]]:
    """Read the headers of every tile and list what is wrong.

    Args:
        found: tiles as found on disk.
        label_bands: band count a label raster must have (3 for RGB colours, 1 for class values).

    Returns:
        The usable tiles with their image headers, and the problems (empty when all is well).
    """
    usable: list[tuple[TileFiles, RasterInfo]] = []
    problems: list[Problem] = []
    for files in found:
        try:
            image = read_header(files.image)
        except InvalidRasterError as exc:
            problems.append(Problem("unreadable", files.image, _strip_path(exc, files.image)))
            continue
        wanted = files.image_count or max(files.image_bands or (1,))
        if image.count != wanted if files.image_count else image.count < wanted:
            problems.append(
                Problem("bands", files.image, f"has {image.count} bands, expected {wanted}; replace the file")
            )
            continue
        if files.label is not None:
            try:
                label = read_header(files.label)
            except InvalidRasterError as exc:
                problems.append(Problem("unreadable", files.label, _strip_path(exc, files.label)))
                continue
            if label.count < label_bands:
                problems.append(
                    Problem("bands", files.label, f"has {label.count} bands, expected {label_bands}; replace the file")
                )
                continue
            if (label.height, label.width) != (image.height, image.width):
                problems.append(
                    Problem(
                        "size",
                        files.label,
                        f"is {label.width}x{label.height} px but its image {files.image.name} is "
                        f"{image.width}x{image.height} px; replace the label or the image",
                    )
                )
                continue
            if image.georeferenced and label.georeferenced and not _same_grid(image, label):
                problems.append(
                    Problem(
                        "grid",
                        files.label,
                        f"is in {_grid(label)} but its image {files.image.name} is in {_grid(image)}; reproject the "
                        "label onto the image's grid",
                    )
                )
                continue
        usable.append((files, image))
    mismatched = _mismatched_bands(usable)
    problems += mismatched
    flagged = {problem.path for problem in mismatched}
    return [(files, info) for files, info in usable if files.image not in flagged], problems


def _mismatched_bands(usable: Sequence[tuple[TileFiles, RasterInfo]]) -> list[Problem]:
    """A problem for every image whose band count, data type or georeferencing differs from the first image's."""
    if not usable:
        return []
    first_files, first = usable[0]

    def bands(files: TileFiles, info: RasterInfo) -> tuple[int, str]:
        return (len(files.image_bands) if files.image_bands else info.count), info.dtype

    expected = bands(first_files, first)
    problems = []
    for files, info in usable[1:]:
        if bands(files, info) != expected:
            message = (
                f"has {bands(files, info)[0]} {info.dtype} bands but {first_files.image.name} has {expected[0]} "
                f"{expected[1]} bands; every image of a dataset needs the same bands: convert it or leave it out"
            )
            problems.append(Problem("bands", files.image, message))
        elif info.georeferenced != first.georeferenced:
            message = (
                f"has no georeferencing (CRS and transform) while {first_files.image.name} has; georeference it or "
                "leave it out"
                if first.georeferenced
                else f"is georeferenced while {first_files.image.name} is not; use only georeferenced rasters or only "
                "ungeoreferenced ones"
            )
            problems.append(Problem("grid", files.image, message))
    return problems


def _same_grid(first: RasterInfo, second: RasterInfo) -> bool:
    return first.crs == second.crs and first.transform.almost_equals(second.transform)


def _grid(info: RasterInfo) -> str:
    """CRS, origin and pixel size of a georeferenced raster, for messages."""
    transform = info.transform
    return (
        f"{info.crs} (origin {transform.c:.12g}, {transform.f:.12g}; pixel size {transform.a:.12g}, {transform.e:.12g})"
    )


def _strip_path(exc: Exception, path: Path) -> str:
    return str(exc).replace(f"cannot read raster {str(path)!r} ", "cannot be read ")


def missing_labels(found: Sequence[TileFiles], labelled: Sequence[str], hint: str) -> list[Problem]:
    """Problems for every image of a labelled split that has no label; `hint` says where the label belongs."""
    return [
        Problem("missing", files.image, f"image has no label; {hint.format(name=files.name)}", split=files.split)
        for files in found
        if files.label is None and files.split in labelled
    ]


def orphan_labels(labels: dict[str, Path], images: set[str], split_of: dict[str, str]) -> list[Problem]:
    """Problems for every label (keyed by tile name) whose image is absent."""
    return [
        Problem(
            "missing",
            path,
            f"label has no image; put the image of tile {name} in the image folder or remove the label",
            split=split_of.get(name),
        )
        for name, path in sorted(labels.items())
        if name not in images
    ]


def missing_official(present: set[str], official: Sequence[str], folder: Path, what: str) -> list[Problem]:
    """A warning naming the official tiles absent from a partial dataset (an empty list when none is absent)."""
    absent = [name for name in official if name not in present]
    if not absent:
        return []
    shown = ", ".join(absent[:10]) + (f" and {len(absent) - 10} more" if len(absent) > 10 else "")
    return [
        Problem(
            "incomplete",
            folder,
            f"holds {len(official) - len(absent)} of {len(official)} official {what}; missing {shown}",
            fatal=False,
        )
    ]


def missing_count(present: int, official: int, folder: Path, what: str) -> list[Problem]:
    """A warning when a partial dataset holds fewer than the official number of tiles (empty when complete)."""
    if present >= official:
        return []
    return [Problem("incomplete", folder, f"holds {present} of {official} official {what}", fatal=False)]


def files_by_name(folder: Path, suffix: str, prefix: str = "") -> dict[str, Path]:
    """Files `prefix + NAME + suffix` directly in `folder`, keyed by NAME (empty when the folder is absent)."""
    if not folder.is_dir():
        return {}
    found = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_file() and entry.name.startswith(prefix) and entry.name.endswith(suffix):
                found[entry.name[len(prefix) : len(entry.name) - len(suffix)]] = Path(entry.path)
    return found
