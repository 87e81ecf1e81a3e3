"""ISPRS Vaihingen and Potsdam, read from their unpacked archives with RGB-coded full and eroded labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar, Literal

from cmt_geo.data.base import SampleTransform, SplitOptions, TiledSegmentationDataset, load_split
from cmt_geo.data.labels import RGB, LabelCoding
from cmt_geo.data.tiles import (
    CheckOptions,
    CheckPlan,
    LayoutPaths,
    Problem,
    TileFiles,
    files_by_name,
    missing_labels,
    missing_official,
    orphan_labels,
)
from cmt_geo.errors import ConfigError, DatasetNotFoundError

LabelKind = Literal["auto", "full", "eroded"]
BandOrder = Literal["IRRG", "RGB", "RGBIR"]

#: Colour of eroded boundaries in `noBoundary` labels; decoded to the ignore index.
BOUNDARY: RGB = (0, 0, 0)


@dataclass(frozen=True)
class ImageSource:
    """Where an image of one band order lives: folder, file name pattern, the bands to read and the band count."""

    folder: str
    prefix: str
    suffix: str
    bands: tuple[int, ...]
    count: int


class ISPRSDataset(TiledSegmentationDataset):
    """Shared loading of the ISPRS 2D semantic labelling benchmarks (see `Vaihingen` and `Potsdam`).

    Tiles are placed side by side in pixel space (not every release georeferences its labels); the protocol scores
    the five classes without clutter (`scored_classes`), on eroded labels.
    """

    classes = ("impervious_surface", "building", "low_vegetation", "tree", "car", "clutter")
    colors = ((255, 255, 255), (0, 0, 255), (0, 255, 255), (0, 255, 0), (255, 255, 0), (255, 0, 0))
    scored_classes = (0, 1, 2, 3, 4)

    #: Official tiles per split.
    official: ClassVar[dict[str, tuple[str, ...]]]
    #: Image sources per band order, tried in turn for each tile.
    image_sources: ClassVar[dict[str, tuple[ImageSource, ...]]]
    #: Band names per band order.
    band_names_of: ClassVar[dict[str, tuple[str, ...]]]
    #: Label file prefix, full and eroded suffixes, and the folders each kind may sit in (relative to the root).
    label_prefix: ClassVar[str]
    label_suffix: ClassVar[dict[str, str]]
    label_folders: ClassVar[dict[str, tuple[str, ...]]]

    def __init__(
        self,
        root: str | Path,
        split: Literal["train", "val", "test"] = "train",
        bands: BandOrder | None = None,
        labels: LabelKind = "auto",
        split_options: SplitOptions | None = None,
        exclude_tiles: Sequence[str] = (),
        unknown_labels: Literal["error", "ignore"] = "error",
        transforms: SampleTransform | None = None,
        compact: bool = False,
    ) -> None:
        """Load one split.

        Args:
            root: the unpacked dataset folder.
            split: "train" and "val" (carved from the official training tiles) or "test" (evaluation only).
            bands: band order; the dataset default when None.
            labels: "full" or "eroded" (`noBoundary`, boundaries ignored) labels; "auto" uses eroded labels for
                the test split, as the benchmark protocol does, and full labels otherwise.
            split_options: how validation tiles are carved.
            exclude_tiles: tiles never loaded (e.g. Potsdam 7_10, whose labels have errors).
            unknown_labels: what an unknown label colour does: raise, or become ignored pixels.
            transforms: applied to every sample.
            compact: keep the image in its stored dtype and the mask as uint8 (see `TiledSegmentationDataset`).
        """
        self.root = Path(root).expanduser()
        order = bands or self.default_bands
        found, problems = self.scan(self.root, order, labels, exclude_tiles)
        options = split_options or SplitOptions()
        tiles, crs, res = load_split(
            found, problems, split=split, options=options, label_bands=3, dataset=self.name, root=self.root
        )
        coding = self.label_coding_of(unknown_labels)
        names = self.band_names_of[order]
        super().__init__(tiles, coding, names, crs=crs, res=res, transforms=transforms, compact=compact)

    default_bands: ClassVar[str]

    @classmethod
    def label_coding_of(cls, unknown: Literal["error", "ignore"] = "error") -> LabelCoding:
        """RGB class colours; black (eroded boundaries) is ignored."""
        return LabelCoding.rgb(cls.colors, ignore=[BOUNDARY], unknown=unknown)

    @classmethod
    def scan(
        cls, root: Path, bands: str | None = None, labels: LabelKind = "auto", exclude: Sequence[str] = ()
    ) -> tuple[list[TileFiles], list[Problem]]:
        """Every tile found in an ISPRS folder, and the problems of its layout.

        Args:
            root: the unpacked dataset folder.
            bands: band order; the dataset default when None.
            labels: which labels each split uses (see the constructor).
            exclude: tiles ignored entirely: their files and their problems.

        Raises:
            ConfigError: the band order does not exist for this dataset.
            DatasetNotFoundError: no imagery at all.
        """
        order = bands or cls.default_bands
        if order not in cls.image_sources:
            raise ConfigError(f"{cls.__name__} has no {order!r} imagery; use one of {', '.join(cls.image_sources)}")
        if labels not in ("auto", "full", "eroded"):
            raise ConfigError(f"labels={labels!r} is not a label kind; use auto, full or eroded")
        excluded = set(exclude)
        images: dict[str, tuple[Path, ImageSource]] = {}
        for source in reversed(cls.image_sources[order]):
            for name, path in files_by_name(root / source.folder, source.suffix, source.prefix).items():
                if name not in excluded:
                    images[name] = (path, source)
        if not images:
            folders = " or ".join(f"{root / source.folder}" for source in cls.image_sources[order])
            raise DatasetNotFoundError(
                f"no {cls.__name__} {order} imagery in {folders}; unpack the imagery archive into {root}"
            )
        official = {split: [name for name in names if name not in excluded] for split, names in cls.official.items()}
        split_of = {name: split for split, names in official.items() for name in names}
        full, eroded = (
            {name: path for name, path in cls._labels(root, kind).items() if name not in excluded}
            for kind in ("full", "eroded")
        )
        found, problems, fallback = [], [], []
        for name, (path, source) in sorted(images.items()):
            split = split_of.get(name)
            if split is None:
                problems.append(Problem("extra", path, f"tile {name} is not an official tile; it is skipped", False))
                continue
            kind = cls._label_kind(labels, split)
            label = (eroded if kind == "eroded" else full).get(name)
            if label is None and labels == "auto" and kind == "eroded" and name in full:
                label = full[name]
                fallback.append(name)
            found.append(TileFiles(name, name, split, path, label, source.bands, source.count))
        if fallback:
            problems.append(
                Problem(
                    "missing",
                    root,
                    f"no eroded (noBoundary) labels for test tiles {_listed(fallback)}: the test split uses their full "
                    "labels instead, so scores are not the benchmark protocol's; unpack the eroded-label archive, or "
                    "choose labels='full' (--labels-kind full) to say so",
                    fatal=False,
                )
            )
        hint = (
            f"put {cls.label_prefix}{{name}}<suffix> (full labels: {cls.label_suffix['full']}, eroded: "
            f"{cls.label_suffix['eroded']}) in {root} or its label folders, or choose the labels you have with "
            "labels='full' or 'eroded' (--labels-kind)"
        )
        problems += missing_labels(found, ("train", "test"), hint)
        problems += orphan_labels(full, set(images), split_of) + orphan_labels(eroded, set(images), split_of)
        for split, names in official.items():
            problems += missing_official(set(images), names, root, f"{split} tiles")
        return found, problems

    @classmethod
    def layout_paths(cls, name: str, split: str) -> LayoutPaths:
        """Where tile `name` goes: the imagery with the most bands, full labels and eroded labels in their folders."""
        order = max(cls.image_sources, key=lambda key: cls.image_sources[key][0].count)
        source = cls.image_sources[order][0]
        full, eroded = (
            f"{cls.label_folders[kind][0]}/{cls.label_prefix}{name}{cls.label_suffix[kind]}"
            for kind in ("full", "eroded")
        )
        return LayoutPaths(
            f"{source.folder}/{source.prefix}{name}{source.suffix}", cls.band_names_of[order], full, eroded
        )

    @classmethod
    def plan_check(cls, root: Path, options: CheckOptions) -> CheckPlan:
        """Every tile with the labels `options.labels_kind` loads, plus every label of the other kind."""
        options.refuse(cls.name, "labels", "classes", "class_column", "label_nodata")
        found, problems = cls.scan(root, labels=options.labels_kind)
        extra, warnings = cls._other_labels(root, found, options.labels_kind)
        return CheckPlan(found, extra, [*problems, *warnings], cls.label_coding_of(), cls.classes)

    @classmethod
    def _other_labels(
        cls, root: Path, found: Sequence[TileFiles], labels: LabelKind
    ) -> tuple[list[TileFiles], list[Problem]]:
        """The labels the tiles do not load, as tiles, and a warning per label kind naming the tiles without one
        (tiles whose missing label `scan` already reported are left out)."""
        tiles: list[TileFiles] = []
        absent: dict[str, list[str]] = {"full": [], "eroded": []}
        paths = {kind: cls._labels(root, kind) for kind in absent}
        for files in found:
            for kind, of_kind in paths.items():
                label = of_kind.get(files.name)
                fell_back = kind == "eroded" and labels == "auto" and files.split == "test"
                if label is None and files.label is not None and not fell_back:
                    absent[kind].append(files.name)
                elif label is not None and label != files.label:
                    tiles.append(replace(files, label=label))
        problems = [
            Problem(
                "missing", root, f"no {kind} label for tiles {_listed(names)}; only labels='{kind}' needs them", False
            )
            for kind, names in absent.items()
            if names
        ]
        return tiles, problems

    @staticmethod
    def _label_kind(labels: LabelKind, split: str) -> str:
        """The label kind a tile of `split` loads: "full" or "eroded"."""
        return "eroded" if labels == "eroded" or (labels == "auto" and split == "test") else "full"

    @classmethod
    def _labels(cls, root: Path, kind: str) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for folder in (root, *(root / sub for sub in cls.label_folders[kind])):
            found.update(files_by_name(folder, cls.label_suffix[kind], cls.label_prefix))
        return found


def _listed(names: Sequence[str]) -> str:
    return ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")


_VAIHINGEN_PREFIX = "top_mosaic_09cm_area"


class Vaihingen(ISPRSDataset):
    """ISPRS Vaihingen: 33 IRRG tiles of about 2500x2000 px at 9 cm.

    Layout: `top/top_mosaic_09cm_area{N}.tif`; full labels `top_mosaic_09cm_area{N}.tif` at the root or in
    `gts_for_participants/`; eroded labels `top_mosaic_09cm_area{N}_noBoundary.tif` at the root or in
    `gts_eroded_for_participants/`. The imagery has no blue band, so IRRG is the only band order.
    """

    name = "vaihingen"
    default_bands = "IRRG"
    official: ClassVar[dict[str, tuple[str, ...]]] = {
        "train": tuple(str(n) for n in (1, 3, 5, 7, 11, 13, 15, 17, 21, 23, 26, 28, 30, 32, 34, 37)),
        "test": tuple(str(n) for n in (2, 4, 6, 8, 10, 12, 14, 16, 20, 22, 24, 27, 29, 31, 33, 35, 38)),
    }
    image_sources: ClassVar[dict[str, tuple[ImageSource, ...]]] = {
        "IRRG": (ImageSource("top", _VAIHINGEN_PREFIX, ".tif", (1, 2, 3), 3),),
    }
    band_names_of: ClassVar[dict[str, tuple[str, ...]]] = {"IRRG": ("nir", "red", "green")}
    label_prefix = _VAIHINGEN_PREFIX
    label_suffix: ClassVar[dict[str, str]] = {"full": ".tif", "eroded": "_noBoundary.tif"}
    label_folders: ClassVar[dict[str, tuple[str, ...]]] = {
        "full": ("gts_for_participants",),
        "eroded": ("gts_eroded_for_participants",),
    }

    @classmethod
    def _labels(cls, root: Path, kind: str) -> dict[str, Path]:
        # Full labels share their name with the images; only names that are area numbers are full labels.
        return {name: path for name, path in super()._labels(root, kind).items() if name.isdigit()}


_POTSDAM_TRAIN = (
    "2_10 2_11 2_12 3_10 3_11 3_12 4_10 4_11 4_12 5_10 5_11 5_12 6_7 6_8 6_9 6_10 6_11 6_12 7_7 7_8 7_9 7_10 7_11 7_12"
)
_POTSDAM_TEST = "2_13 2_14 3_13 3_14 4_13 4_14 4_15 5_13 5_14 5_15 6_13 6_14 6_15 7_13"
_RGBIR = ImageSource("4_Ortho_RGBIR", "top_potsdam_", "_RGBIR.tif", (1, 2, 3, 4), 4)


class Potsdam(ISPRSDataset):
    """ISPRS Potsdam: 38 tiles of 6000x6000 px at 5 cm, in RGB, IRRG or RGBIR.

    Layout: `2_Ortho_RGB/top_potsdam_{id}_RGB.tif`, `3_Ortho_IRRG/top_potsdam_{id}_IRRG.tif`,
    `4_Ortho_RGBIR/top_potsdam_{id}_RGBIR.tif` (RGB and IRRG are read from RGBIR when their folder is absent);
    labels `5_Labels_all/top_potsdam_{id}_label.tif` and `5_Labels_all_noBoundary/top_potsdam_{id}_label_noBoundary.tif`
    (or at the root). Tile 7_10 has label errors: pass `exclude_tiles=("7_10",)` to leave it out, as is common.
    """

    name = "potsdam"
    default_bands = "RGB"
    official: ClassVar[dict[str, tuple[str, ...]]] = {
        "train": tuple(_POTSDAM_TRAIN.split()),
        "test": tuple(_POTSDAM_TEST.split()),
    }
    image_sources: ClassVar[dict[str, tuple[ImageSource, ...]]] = {
        "RGB": (
            ImageSource("2_Ortho_RGB", "top_potsdam_", "_RGB.tif", (1, 2, 3), 3),
            replace(_RGBIR, bands=(1, 2, 3)),
        ),
        "IRRG": (
            ImageSource("3_Ortho_IRRG", "top_potsdam_", "_IRRG.tif", (1, 2, 3), 3),
            replace(_RGBIR, bands=(4, 1, 2)),
        ),
        "RGBIR": (_RGBIR,),
    }
    band_names_of: ClassVar[dict[str, tuple[str, ...]]] = {
        "RGB": ("red", "green", "blue"),
        "IRRG": ("nir", "red", "green"),
        "RGBIR": ("red", "green", "blue", "nir"),
    }
    label_prefix = "top_potsdam_"
    label_suffix: ClassVar[dict[str, str]] = {"full": "_label.tif", "eroded": "_label_noBoundary.tif"}
    label_folders: ClassVar[dict[str, tuple[str, ...]]] = {
        "full": ("5_Labels_all", "5_Labels_for_participants"),
        "eroded": ("5_Labels_all_noBoundary", "5_Labels_for_participants_no_Boundary"),
    }
