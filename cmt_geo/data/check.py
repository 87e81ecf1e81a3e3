"""Verify a dataset folder: list every problem with its path, or summarise tiles per split and pixels per class."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from rasterio.windows import Window

from cmt_geo.data.isprs import ISPRSDataset, Potsdam, Vaihingen
from cmt_geo.data.labels import LabelCoding
from cmt_geo.data.loveda import LoveDA
from cmt_geo.data.raster import VECTOR_SUFFIXES, RasterSegmentation
from cmt_geo.data.tiles import Problem, TileFiles, inspect_tiles, open_raster
from cmt_geo.data.uavid import UAVid
from cmt_geo.errors import ConfigError, DatasetNotFoundError

#: Datasets `check_dataset` knows, by the name `cmtgeo data check --dataset` takes.
CHECKABLE: dict[str, type[Vaihingen | Potsdam | UAVid | LoveDA | RasterSegmentation]] = {
    "vaihingen": Vaihingen,
    "potsdam": Potsdam,
    "uavid": UAVid,
    "loveda": LoveDA,
    "raster": RasterSegmentation,
}

_ROWS_PER_READ = 512


@dataclass
class CheckReport:
    """What `check_dataset` found.

    Args:
        dataset: dataset name.
        root: the folder checked.
        problems: every problem, fatal ones and warnings.
        tiles_per_split: readable tiles per official split.
        pixels_per_class: labelled pixels per class name (ignored pixels under "ignored").
    """

    dataset: str
    root: Path
    problems: list[Problem] = field(default_factory=list)
    tiles_per_split: dict[str, int] = field(default_factory=dict)
    pixels_per_class: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no problem is fatal (warnings about a partial dataset are fine)."""
        return not any(problem.fatal for problem in self.problems)


def check_dataset(dataset: str, root: str | Path, labels: str | Path | None = None) -> CheckReport:
    """Check a dataset folder: layout, pairs, readability, sizes, grids, band counts and every label colour or value.

    ISPRS datasets have both their full and eroded labels checked; a missing label that `labels="auto"` does not
    load is a warning. Label rasters are read whole, a strip at a time, so memory stays small on 6000x6000 tiles.
    The user's own rasters ("raster") are checked for pairs, readability, sizes, grids and band counts; their label
    values are not checked, since their classes are not known here.

    Args:
        dataset: one of `CHECKABLE`.
        root: the unpacked dataset folder; for "raster", an image file or a folder of images.
        labels: for "raster" only, the class raster or the folder of class rasters paired with the images by file
            name (a vector file is not paired: only the images are checked).

    Raises:
        ConfigError: an unknown dataset name, or `labels` with another dataset than "raster".
        DatasetNotFoundError: the folder does not exist.
    """
    if dataset not in CHECKABLE:
        raise ConfigError(f"cannot check dataset {dataset!r}; use one of {', '.join(CHECKABLE)}")
    if labels is not None and dataset != "raster":
        raise ConfigError(f"labels={str(labels)!r} was given for {dataset}; --labels is only for --dataset raster")
    folder = Path(root).expanduser()
    if dataset == "raster" and not folder.exists():
        raise DatasetNotFoundError(f"{folder} does not exist; give an image or a folder of images")
    if dataset != "raster" and not folder.is_dir():
        raise DatasetNotFoundError(f"{folder} is not a folder; give the unpacked {dataset} dataset folder")
    kind = CHECKABLE[dataset]
    report = CheckReport(dataset, folder)
    try:
        found, report.problems = _scan(kind, folder, labels)
    except DatasetNotFoundError as exc:
        report.problems = [Problem("missing", folder, str(exc).removeprefix(f"{folder}: "))]
        return report
    checked = list(found)
    if issubclass(kind, ISPRSDataset):
        unused, warnings = kind.unused_labels(folder, found)
        checked += unused
        report.problems += warnings
    coding = None if issubclass(kind, RasterSegmentation) else kind.label_coding_of("ignore")
    usable, header_problems = inspect_tiles(checked, coding.bands if coding else 1)
    report.problems = list(dict.fromkeys([*report.problems, *header_problems]))  # an image shared by two labels
    report.tiles_per_split = dict(Counter(split for _, split in {(files.name, files.split) for files, _ in usable}))
    if coding is None:
        return report
    pixels = np.zeros(256, dtype=np.int64)
    loaded = set(found)
    for files, info in usable:
        if files.label is not None:
            counts = _check_label(files.label, info.height, info.width, coding, report.problems)
            if files in loaded:
                pixels += counts
    report.pixels_per_class = {name: int(pixels[index]) for index, name in enumerate(kind.classes)}
    report.pixels_per_class["ignored"] = int(pixels[len(kind.classes) :].sum())
    return report


def _scan(
    kind: type[Vaihingen | Potsdam | UAVid | LoveDA | RasterSegmentation], folder: Path, labels: str | Path | None
) -> tuple[list[TileFiles], list[Problem]]:
    """The tiles a dataset loads by default, and the problems of its layout."""
    if not issubclass(kind, RasterSegmentation):
        return kind.scan(folder)
    label_path = Path(labels).expanduser() if labels is not None else None
    rasters = [label_path] if label_path is not None and label_path.suffix.lower() not in VECTOR_SUFFIXES else []
    return kind.scan([folder], rasters, labelled=bool(rasters))


def _check_label(
    path: Path, height: int, width: int, coding: LabelCoding, problems: list[Problem]
) -> npt.NDArray[np.int64]:
    """Pixels per mask value (256) of a label raster, read a strip at a time; unknown codes become a problem."""
    unknown: Counter[str] = Counter()
    pixels = np.zeros(256, dtype=np.int64)
    with open_raster(path) as src:
        bands = list(range(1, coding.bands + 1))
        for top in range(0, height, _ROWS_PER_READ):
            raw = src.read(bands, window=Window(0, top, width, min(_ROWS_PER_READ, height - top)))
            unknown.update(coding.unknown_codes(raw))
            pixels += np.bincount(coding.decode(raw).ravel(), minlength=256)
    if unknown:
        listed = ", ".join(f"{code} ({count} px)" for code, count in unknown.most_common(5))
        problems.append(Problem("labels", path, f"holds label colours or values that are not classes: {listed}"))
    return pixels
