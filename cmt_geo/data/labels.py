"""Label decoding: colour- or value-coded label rasters and vector polygons to class-index masks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from cmt_geo.card import IGNORE_INDEX
from cmt_geo.errors import InvalidLabelError

RGB = tuple[int, int, int]


def _rgb_code(color: RGB) -> int:
    return (color[0] << 16) | (color[1] << 8) | color[2]


def _code_name(code: int, bands: int) -> str:
    if bands == 3:
        return f"({code >> 16}, {(code >> 8) & 255}, {code & 255})"
    return str(code)


def nodata_class_warning(value: int, name: str, ignored: bool, pixels: int | None = None) -> str:
    """What a label raster whose no-data `value` is also class `name` means for its pixels (`pixels` of them)."""
    count = "pixels" if pixels is None else f"{pixels} px"
    fate = (
        "ignored (label_nodata='ignore')"
        if ignored
        else "kept as that class; pass label_nodata='ignore' (--label-nodata ignore) to ignore them"
    )
    return f"declares no-data {value}, which is class {name!r}: its {count} are {fate}"


@dataclass(frozen=True)
class LabelCoding:
    """How a label raster stores classes: one RGB colour or one integer value per class.

    Build one with `LabelCoding.rgb(...)` or `LabelCoding.values(...)`.

    Args:
        codes: the stored code of class i (an RGB colour packed as r<<16 | g<<8 | b, or a raw value).
        bands: 3 for RGB-coded labels, 1 for value-coded labels.
        ignore_codes: stored codes that mean "no label" and decode to `IGNORE_INDEX`.
        unknown: what to do with a code that is neither a class nor ignored: raise, or decode it to `IGNORE_INDEX`.
    """

    codes: tuple[int, ...]
    bands: Literal[1, 3]
    ignore_codes: tuple[int, ...] = ()
    unknown: Literal["error", "ignore"] = "error"
    _sorted: npt.NDArray[np.int64] = field(init=False, repr=False, compare=False)
    _classes: npt.NDArray[np.uint8] = field(init=False, repr=False, compare=False)
    _byte_classes: npt.NDArray[np.uint8] = field(init=False, repr=False, compare=False)
    _byte_known: npt.NDArray[np.bool_] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        table = {code: index for index, code in enumerate(self.codes)}
        table.update(dict.fromkeys(self.ignore_codes, IGNORE_INDEX))
        keys = sorted(table)
        object.__setattr__(self, "_sorted", np.array(keys, dtype=np.int64))
        object.__setattr__(self, "_classes", np.array([table[key] for key in keys], dtype=np.uint8))
        byte_classes = np.full(256, IGNORE_INDEX, dtype=np.uint8)
        byte_known = np.zeros(256, dtype=bool)
        for code, index in table.items():
            if 0 <= code < 256:
                byte_classes[code], byte_known[code] = index, True
        object.__setattr__(self, "_byte_classes", byte_classes)
        object.__setattr__(self, "_byte_known", byte_known)

    @classmethod
    def rgb(
        cls, colors: Sequence[RGB], ignore: Sequence[RGB] = (), unknown: Literal["error", "ignore"] = "error"
    ) -> LabelCoding:
        """Labels stored as RGB colours: class i has `colors[i]`; `ignore` colours mean no label."""
        return cls(tuple(map(_rgb_code, colors)), 3, tuple(map(_rgb_code, ignore)), unknown)

    @classmethod
    def values(
        cls, values: Sequence[int], ignore: Sequence[int] = (), unknown: Literal["error", "ignore"] = "error"
    ) -> LabelCoding:
        """Labels stored as one band of integers: class i has `values[i]`; `ignore` values mean no label."""
        return cls(tuple(int(v) for v in values), 1, tuple(int(v) for v in ignore), unknown)

    def pack(self, array: npt.NDArray[np.generic]) -> npt.NDArray[np.int64]:
        """Stored codes of a (bands, H, W) label array, as (H, W)."""
        if self.bands == 1:
            return array[0].astype(np.int64)
        red, green, blue = (array[i].astype(np.int64) for i in range(3))
        return (red << 16) | (green << 8) | blue

    def decode(self, array: npt.NDArray[np.generic], source: str | Path = "") -> npt.NDArray[np.uint8]:
        """Class indices (H, W) uint8 of a (bands, H, W) label array; ignored codes become `IGNORE_INDEX`.

        Raises:
            InvalidLabelError: a code that is neither a class nor ignored, when `unknown` is "error".
        """
        if self.bands == 1 and array.dtype == np.uint8:
            return self._decode_bytes(array[0], source)
        codes = self.pack(array)
        position = np.minimum(np.searchsorted(self._sorted, codes), len(self._sorted) - 1)
        known = self._sorted[position] == codes
        classes = self._classes[position]
        if known.all():
            return classes
        if self.unknown == "ignore":
            classes[~known] = IGNORE_INDEX
            return classes
        raise self._unknown_error(_code_name(int(codes[~known].flat[0]), self.bands), source)

    def _decode_bytes(self, values: npt.NDArray[np.uint8], source: str | Path) -> npt.NDArray[np.uint8]:
        """`decode` for one band of bytes, through 256-entry lookup tables."""
        classes = self._byte_classes[values]
        if self.unknown == "error":
            known = self._byte_known[values]
            if not known.all():
                raise self._unknown_error(str(int(values[~known].flat[0])), source)
        return classes

    def _unknown_error(self, code: str, source: str | Path) -> InvalidLabelError:
        return InvalidLabelError(
            f"label {str(source)!r} holds {code}, which is not a class of this dataset; list every bad label with "
            "`cmtgeo data check` (--classes for your own rasters; Python: cmt_geo.data.check_dataset), then fix the "
            "file, or pass unknown_labels='ignore' to the dataset to ignore such pixels"
        )

    def encode(self, classes: npt.NDArray[np.integer]) -> npt.NDArray[np.uint8]:
        """The (bands, H, W) uint8 label raster of (H, W) class indices; `IGNORE_INDEX` gets the first ignore code.

        Raises:
            InvalidLabelError: a class index without a code, or ignored pixels and no ignore code.
        """
        table = np.array([*self.codes, self.ignore_codes[0] if self.ignore_codes else -1], dtype=np.int64)
        index = np.where(classes == IGNORE_INDEX, len(self.codes), classes.astype(np.int64))
        if index.min(initial=0) < 0 or index.max(initial=0) > len(self.codes):
            raise InvalidLabelError(f"class indices must be 0..{len(self.codes) - 1} or {IGNORE_INDEX}")
        codes = table[index]
        if (codes < 0).any() or (codes > (255 if self.bands == 1 else 0xFFFFFF)).any():
            raise InvalidLabelError("these classes have no 8-bit code: the labels cannot be written as bytes")
        if self.bands == 1:
            return codes[None].astype(np.uint8)
        return np.stack([(codes >> shift) & 255 for shift in (16, 8, 0)]).astype(np.uint8)

    def unknown_codes(self, array: npt.NDArray[np.generic]) -> dict[str, int]:
        """The codes in a (bands, H, W) label array that are not classes nor ignored, with their pixel counts."""
        values, counts = np.unique(self.pack(array), return_counts=True)
        unknown = ~np.isin(values, self._sorted)
        return {_code_name(int(v), self.bands): int(c) for v, c in zip(values[unknown], counts[unknown], strict=True)}
