"""UAVid: 4K UAV video frames with RGB-coded labels, read in pixel space from `uavid_{train,val,test}/seqN/`."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from cmt_geo.data.base import SampleTransform, SplitOptions, TiledSegmentationDataset, load_split
from cmt_geo.data.labels import LabelCoding
from cmt_geo.data.tiles import (
    LayoutPaths,
    Problem,
    TileFiles,
    files_by_name,
    missing_count,
    missing_labels,
    orphan_labels,
    png_layout,
)
from cmt_geo.errors import DatasetNotFoundError


class UAVid(TiledSegmentationDataset):
    """UAVid: 3840x2160 (some 4096x2160) UAV frames, 8 classes, not georeferenced.

    Layout: `uavid_{train,val,test}/seqN/Images/*.png` and `.../Labels/*.png` (test labels are withheld).
    "val" is carved from `uavid_train` by sequence; "test" is the labelled official `uavid_val`, for evaluation only.
    """

    name = "uavid"
    classes = ("building", "road", "tree", "low_vegetation", "moving_car", "static_car", "human", "clutter")
    colors = (
        (128, 0, 0),
        (128, 64, 128),
        (0, 128, 0),
        (128, 128, 0),
        (64, 0, 128),
        (192, 0, 192),
        (64, 64, 0),
        (0, 0, 0),
    )
    #: Official frame counts per split folder.
    official_frames: ClassVar[dict[str, int]] = {"train": 200, "val": 70, "test": 150}
    #: The split each official folder serves as: the labelled `uavid_val` is the test split; `uavid_test` has no
    #: labels.
    split_of_folder: ClassVar[dict[str, str]] = {"train": "train", "val": "test", "test": "unlabelled"}

    def __init__(
        self,
        root: str | Path,
        split: Literal["train", "val", "test"] = "train",
        split_options: SplitOptions | None = None,
        unknown_labels: Literal["error", "ignore"] = "error",
        transforms: SampleTransform | None = None,
        compact: bool = False,
    ) -> None:
        """Load one split.

        Args:
            root: the folder holding `uavid_train`, `uavid_val` and `uavid_test`.
            split: "train", "val" (sequences carved from `uavid_train`) or "test" (`uavid_val`).
            split_options: how validation sequences are carved (`val_tiles` names sequences, e.g. "seq1").
            unknown_labels: what an unknown label colour does: raise, or become ignored pixels.
            transforms: applied to every sample.
            compact: keep the image in its stored dtype and the mask as uint8 (see `TiledSegmentationDataset`).
        """
        self.root = Path(root).expanduser()
        found, problems = self.scan(self.root)
        options = split_options or SplitOptions()
        tiles, crs, res = load_split(
            found, problems, split=split, options=options, label_bands=3, dataset=self.name, root=self.root
        )
        coding = self.label_coding_of(unknown_labels)
        bands = ("red", "green", "blue")
        super().__init__(tiles, coding, bands, crs=crs, res=res, transforms=transforms, compact=compact)

    @classmethod
    def label_coding_of(cls, unknown: Literal["error", "ignore"] = "error") -> LabelCoding:
        """RGB class colours."""
        return LabelCoding.rgb(cls.colors, unknown=unknown)

    @classmethod
    def scan(cls, root: Path) -> tuple[list[TileFiles], list[Problem]]:
        """Every frame found under `root`, and the problems of its layout.

        Raises:
            DatasetNotFoundError: no `uavid_*` folder with frames.
        """
        found: list[TileFiles] = []
        problems: list[Problem] = []
        for official, frames in cls.official_frames.items():
            folder = root / f"uavid_{official}"
            split = cls.split_of_folder[official]
            sequences = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
            split_found: list[TileFiles] = []
            for sequence in sequences:
                images = files_by_name(sequence / "Images", ".png")
                labels = files_by_name(sequence / "Labels", ".png")
                for stem, path in sorted(images.items()):
                    name = f"{sequence.name}/{stem}"
                    split_found.append(TileFiles(name, sequence.name, split, path, labels.get(stem), None, 3))
                problems += orphan_labels(labels, set(images), dict.fromkeys(labels, split))
            found += split_found
            problems += missing_count(len(split_found), frames, folder, f"{official} frames")
        if not found:
            raise DatasetNotFoundError(
                f"no UAVid frames in {str(root)!r}; unpack the archive so that {root}/uavid_train/seq1/Images exists"
            )
        hint = "put a PNG of the same name in the sequence's Labels folder"
        problems += missing_labels(found, ("train", "test"), hint)
        return found, problems

    @classmethod
    def layout_paths(cls, name: str, split: str) -> LayoutPaths:
        """Where frame `name` ("seqN/stem") of a split ("train", "test" or "unlabelled") goes."""
        sequence, stem = name.split("/")
        return png_layout(
            cls.split_of_folder, split, f"uavid_{{folder}}/{sequence}/Images/{stem}.png", ("Images", "Labels")
        )
