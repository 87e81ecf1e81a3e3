"""Verify a dataset folder: list every problem with its path, or summarise tiles per split and pixels per class."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rasterio.windows import Window

from cmt_geo.data.isprs import Potsdam, Vaihingen
from cmt_geo.data.loveda import LoveDA
from cmt_geo.data.tiles import Problem, inspect_tiles, open_raster
from cmt_geo.data.uavid import UAVid
from cmt_geo.errors import ConfigError, DatasetNotFoundError

#: Datasets `check_dataset` knows, by the name `cmtgeo data check --dataset` takes.
CHECKABLE: dict[str, type[Vaihingen | Potsdam | UAVid | LoveDA]] = {
    "vaihingen": Vaihingen,
    "potsdam": Potsdam,
    "uavid": UAVid,
    "loveda": LoveDA,
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


def check_dataset(dataset: str, root: str | Path) -> CheckReport:
    """Check a dataset folder: layout, pairs, readability, sizes, band counts and every label colour or value.

    Label rasters are read whole, a strip at a time, so memory stays small on 6000x6000 tiles.

    Args:
        dataset: one of `CHECKABLE`.
        root: the unpacked dataset folder.

    Raises:
        ConfigError: an unknown dataset name.
        DatasetNotFoundError: the folder does not exist.
    """
    if dataset not in CHECKABLE:
        raise ConfigError(f"cannot check dataset {dataset!r}; use one of {', '.join(CHECKABLE)}")
    folder = Path(root).expanduser()
    if not folder.is_dir():
        raise DatasetNotFoundError(f"{folder} is not a folder; give the unpacked {dataset} dataset folder")
    kind = CHECKABLE[dataset]
    report = CheckReport(dataset, folder)
    try:
        found, report.problems = kind.scan(folder)
    except DatasetNotFoundError as exc:
        report.problems = [Problem("missing", folder, str(exc).removeprefix(f"{folder}: "))]
        return report
    coding = kind.label_coding_of("ignore")
    usable, header_problems = inspect_tiles(found, coding.bands)
    report.problems += header_problems
    report.tiles_per_split = dict(Counter(files.split for files, _ in usable))
    pixels = np.zeros(256, dtype=np.int64)
    for files, info in usable:
        if files.label is None:
            continue
        unknown: Counter[str] = Counter()
        with open_raster(files.label) as src:
            bands = list(range(1, coding.bands + 1))
            for top in range(0, info.height, _ROWS_PER_READ):
                rows = min(_ROWS_PER_READ, info.height - top)
                raw = src.read(bands, window=Window(0, top, info.width, rows))
                unknown.update(coding.unknown_codes(raw))
                pixels += np.bincount(coding.decode(raw).ravel(), minlength=256)
        if unknown:
            listed = ", ".join(f"{code} ({count} px)" for code, count in unknown.most_common(5))
            report.problems.append(
                Problem("labels", files.label, f"holds label colours or values that are not classes: {listed}")
            )
    report.pixels_per_class = {name: int(pixels[index]) for index, name in enumerate(kind.classes)}
    report.pixels_per_class["ignored"] = int(pixels[len(kind.classes) :].sum())
    return report
