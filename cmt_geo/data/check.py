"""Verify a dataset folder: list every problem with its path, or summarise tiles per split and pixels per class.

Every file the check vouches for is decoded block by block, so a truncated or corrupt file is found here rather
than in the middle of training.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from cmt_geo.data.base import SplitOptions
from cmt_geo.data.labels import IGNORE_INDEX, LabelCoding, nodata_class_warning
from cmt_geo.data.registry import dataset_class
from cmt_geo.data.splits import split_tiles
from cmt_geo.data.tiles import CheckOptions, CheckPlan, Problem, TileFiles, inspect_tiles
from cmt_geo.errors import DatasetNotFoundError, InvalidRasterError
from cmt_geo.io.raster import RasterInfo, nodata_values, read_header, verify_raster
from cmt_geo.progress import NullProgress, Progress


@dataclass
class CheckReport:
    """What `check_dataset` found.

    Args:
        dataset: dataset name.
        root: the folder checked.
        problems: every problem, fatal ones and warnings.
        tiles_per_split: readable tiles per split, named as the datasets' `split=` argument names them ("train",
            "val" as carved by default, "test"), plus "unlabelled" for official tiles whose labels are withheld.
        pixels_per_class: labelled pixels per class name (ignored pixels under "ignored"); for rasters checked
            without class names, per label value that occurs.
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


def check_dataset(
    dataset: str,
    root: str | Path,
    options: CheckOptions | None = None,
    progress: Progress | None = None,
) -> CheckReport:
    """Check a dataset folder: layout, pairs, sizes, grids, band counts, every block of every file, label values.

    Args:
        dataset: a name from `cmt_geo.data.DATASET_NAMES`.
        root: the unpacked dataset folder; for "raster", an image file, a folder of images, or a folder holding
            `images/` and `labels/`.
        options: labels and label options (see `CheckOptions`); a dataset refuses options it has no use for.
        progress: told the rows decoded so far (of all files).

    Raises:
        ConfigError: an unknown dataset name, or an option the dataset has no use for.
        DatasetNotFoundError: the folder (or file) does not exist.
    """
    folder = Path(root).expanduser()
    if not folder.exists():
        raise DatasetNotFoundError(f"{folder} does not exist; give the unpacked {dataset} dataset folder")
    options = options or CheckOptions()
    kind = dataset_class(dataset)
    report = CheckReport(dataset, folder)
    try:
        plan = kind.plan_check(folder, options)
    except DatasetNotFoundError as exc:
        report.problems = [Problem("missing", folder, str(exc).removeprefix(f"{folder}: "))]
        return report
    coding = plan.coding
    usable, header_problems = inspect_tiles([*plan.loaded, *plan.extra], coding.bands if coding else 1)
    report.problems = list(dict.fromkeys([*plan.problems, *header_problems]))  # an image shared by two labels
    loaded = set(plan.loaded)
    pixels, unreadable = _verify_files(usable, loaded, plan, report.problems, progress or NullProgress())
    readable = [files for files, _ in usable if files.image not in unreadable and files.label not in unreadable]
    report.tiles_per_split = _tiles_per_split([files for files in readable if files in loaded])
    if coding is not None:
        counts = {name: int(pixels[index]) for index, name in enumerate(plan.classes)}
        if len(plan.classes) == IGNORE_INDEX:  # raster labels checked without class names: values that occur
            counts = {name: count for name, count in counts.items() if count}
        report.pixels_per_class = {**counts, "ignored": int(pixels[len(plan.classes) :].sum())}
    return report


def _verify_files(
    usable: list[tuple[TileFiles, RasterInfo]],
    loaded: set[TileFiles],
    plan: CheckPlan,
    problems: list[Problem],
    progress: Progress,
) -> tuple[npt.NDArray[np.int64], set[Path]]:
    """Decode every image and label of the usable tiles; add a problem per unreadable file or unknown label code.

    Returns:
        Pixels per mask value (256) of the labels of `loaded` tiles, and the files that could not be decoded.
    """
    coding, classes = plan.coding, plan.classes
    pixels = np.zeros(256, dtype=np.int64)
    unreadable: set[Path] = set()
    decoded: set[Path] = set()
    total = sum(info.height * (1 + (files.label is not None)) for files, info in usable)
    done = 0

    def advance(rows: int) -> None:
        nonlocal done
        done += rows
        progress.report(done, total, "decoding every block")

    for files, info in usable:
        for path, label in ((files.image, False), (files.label, True)):
            if path is None:
                continue
            if path in decoded or path in unreadable:
                advance(info.height)
                continue
            counts = np.zeros(256, dtype=np.int64)
            try:
                if label and coding is not None:
                    _verify_label(path, (coding, classes), counts, problems, advance)
                else:
                    _verify_image(path, problems, advance)
            except InvalidRasterError as exc:
                problems.append(Problem("unreadable", path, str(exc).replace(f"{str(path)!r} ", "", 1)))
                unreadable.add(path)
                continue
            decoded.add(path)
            if label and files in loaded:
                pixels += counts
    return pixels, unreadable


def _verify_label(
    path: Path,
    label: tuple[LabelCoding, tuple[str, ...]],
    pixels: npt.NDArray[np.int64],
    problems: list[Problem],
    advance: Callable[[int], None],
) -> None:
    """Decode one label raster (with its coding and class names): add its mask values to `pixels`, and report codes
    that are not classes and a no-data value that is a class."""
    unknown: Counter[str] = Counter()
    coding, classes = label
    tolerant = dataclasses.replace(coding, unknown="ignore")
    nodata = read_header(path).nodata
    collides = coding.bands == 1 and nodata is not None and nodata in coding.codes
    nodata_pixels = 0

    def visit(strip: npt.NDArray[np.generic]) -> None:
        nonlocal nodata_pixels
        unknown.update(coding.unknown_codes(strip))
        pixels[:] += np.bincount(tolerant.decode(strip).ravel(), minlength=256)
        if collides:
            nodata_pixels += int((strip[0] == nodata).sum())

    verify_raster(path, list(range(1, coding.bands + 1)), visit, advance)
    if unknown:
        listed = ", ".join(f"{code} ({count} px)" for code, count in unknown.most_common(5))
        problems.append(Problem("labels", path, f"holds label colours or values that are not classes: {listed}"))
    if collides and nodata is not None:
        value = int(nodata)
        name = classes[coding.codes.index(value)]
        message = nodata_class_warning(value, name, value in coding.ignore_codes, nodata_pixels)
        problems.append(Problem("labels", path, message, fatal=False))


def _verify_image(path: Path, problems: list[Problem], advance: Callable[[int], None]) -> None:
    """Decode one image; warn when every pixel is no-data."""
    nodata = read_header(path).nodata
    has_data = nodata is None

    def visit(strip: npt.NDArray[np.generic]) -> None:
        nonlocal has_data
        has_data = has_data or not nodata_values(strip, nodata).all()

    verify_raster(path, None, visit, advance)
    if not has_data:
        message = f"holds only no-data (value {nodata}); it adds nothing to training or evaluation: leave it out"
        problems.append(Problem("empty", path, message, fatal=False))


def _tiles_per_split(loaded: list[TileFiles]) -> dict[str, int]:
    """Tiles per split as the datasets load them with default split options."""
    options = SplitOptions()
    splits = split_tiles(loaded, options.val_fraction, options.val_tiles, options.seed, options.test_source)
    counts = {split: len(tiles) for split, tiles in splits.items()}
    counts["unlabelled"] = sum(files.split == "unlabelled" for files in loaded)
    return {split: count for split, count in counts.items() if count}
