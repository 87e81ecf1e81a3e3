"""LoveDA: 1024x1024 PNG tiles of urban and rural scenes with class-value labels (0 = no data)."""

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
from cmt_geo.errors import ConfigError, DatasetNotFoundError

Scene = Literal["urban", "rural", "both"]


class LoveDA(TiledSegmentationDataset):
    """LoveDA: 1024x1024 px at 0.3 m, Urban and Rural scenes, 7 classes; label 0 is no-data and ignored.

    Layout: `{Train,Val,Test}/{Urban,Rural}/images_png/*.png` with `masks_png/*.png` beside (Test masks are
    withheld). "val" is carved from Train by tile; "test" is the labelled official Val, for evaluation only.
    """

    name = "loveda"
    classes = ("background", "building", "road", "water", "barren", "forest", "agriculture")
    colors = (
        (255, 255, 255),
        (255, 0, 0),
        (255, 255, 0),
        (0, 0, 255),
        (159, 129, 183),
        (0, 255, 0),
        (255, 195, 128),
    )
    #: Official tile counts per split folder and scene.
    official_tiles: ClassVar[dict[tuple[str, str], int]] = {
        ("Train", "Urban"): 1156,
        ("Train", "Rural"): 1366,
        ("Val", "Urban"): 677,
        ("Val", "Rural"): 992,
        ("Test", "Urban"): 820,
        ("Test", "Rural"): 976,
    }
    #: The split each official folder serves as: the labelled Val is the test split; Test has no labels.
    split_of_folder: ClassVar[dict[str, str]] = {"Train": "train", "Val": "test", "Test": "unlabelled"}

    def __init__(
        self,
        root: str | Path,
        split: Literal["train", "val", "test"] = "train",
        scene: Scene = "both",
        split_options: SplitOptions | None = None,
        unknown_labels: Literal["error", "ignore"] = "error",
        transforms: SampleTransform | None = None,
        compact: bool = False,
    ) -> None:
        """Load one split.

        Args:
            root: the folder holding Train, Val and Test.
            split: "train", "val" (carved from Train) or "test" (the official Val).
            scene: "urban", "rural" or "both".
            split_options: how validation tiles are carved.
            unknown_labels: what an unknown label value does: raise, or become ignored pixels.
            transforms: applied to every sample.
            compact: keep the image in its stored dtype and the mask as uint8 (see `TiledSegmentationDataset`).
        """
        self.root = Path(root).expanduser()
        found, problems = self.scan(self.root, scene)
        options = split_options or SplitOptions()
        tiles, crs, res = load_split(
            found, problems, split=split, options=options, label_bands=1, dataset=self.name, root=self.root
        )
        coding = self.label_coding_of(unknown_labels)
        bands = ("red", "green", "blue")
        super().__init__(tiles, coding, bands, crs=crs, res=res, transforms=transforms, compact=compact)

    @classmethod
    def label_coding_of(cls, unknown: Literal["error", "ignore"] = "error") -> LabelCoding:
        """Values 1..7 are the classes; 0 is no-data and ignored."""
        return LabelCoding.values(range(1, len(cls.classes) + 1), ignore=[0], unknown=unknown)

    @classmethod
    def scan(cls, root: Path, scene: Scene = "both") -> tuple[list[TileFiles], list[Problem]]:
        """Every tile of the chosen scenes found under `root`, and the problems of its layout.

        Raises:
            ConfigError: an unknown scene.
            DatasetNotFoundError: no tiles at all.
        """
        if scene not in ("urban", "rural", "both"):
            raise ConfigError(f"scene={scene!r} is not a LoveDA scene; use urban, rural or both")
        found: list[TileFiles] = []
        problems: list[Problem] = []
        for (folder, kind), count in cls.official_tiles.items():
            if scene != "both" and kind.lower() != scene:
                continue
            split = cls.split_of_folder[folder]
            place = root / folder / kind
            images = files_by_name(place / "images_png", ".png")
            masks = files_by_name(place / "masks_png", ".png")
            for stem, path in sorted(images.items()):
                found.append(TileFiles(f"{kind}/{stem}", f"{kind}/{stem}", split, path, masks.get(stem), None, 3))
            problems += orphan_labels(masks, set(images), dict.fromkeys(masks, split))
            problems += missing_count(len(images), count, place, f"{folder} {kind} tiles")
        if not found:
            raise DatasetNotFoundError(
                f"no LoveDA tiles in {str(root)!r}; unpack Train.zip, Val.zip and Test.zip into {root}"
            )
        problems += missing_labels(found, ("train", "test"), "put a PNG of the same name in masks_png")
        return found, problems

    @classmethod
    def layout_paths(cls, name: str, split: str) -> LayoutPaths:
        """Where tile `name` ("Urban/stem" or "Rural/stem") of a split ("train", "test" or "unlabelled") goes."""
        scene, stem = name.split("/")
        return png_layout(
            cls.split_of_folder, split, f"{{folder}}/{scene}/images_png/{stem}.png", ("images_png", "masks_png")
        )
