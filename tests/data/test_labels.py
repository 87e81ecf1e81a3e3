"""Label decoding: RGB colours and class values to class indices, ignored codes, unknown codes."""

from __future__ import annotations

import numpy as np
import pytest

from cmt_geo.data.labels import IGNORE_INDEX, LabelCoding
from cmt_geo.errors import InvalidLabelError

COLORS = [(255, 255, 255), (0, 0, 255), (0, 255, 0)]


def _rgb(pixels: list[tuple[int, int, int]]) -> np.ndarray:
    return np.moveaxis(np.array([pixels], dtype=np.uint8), -1, 0)


def test_rgb_colours_decode_to_class_indices_and_ignored_colours_to_ignore() -> None:
    coding = LabelCoding.rgb(COLORS, ignore=[(0, 0, 0)])
    decoded = coding.decode(_rgb([(0, 255, 0), (255, 255, 255), (0, 0, 0), (0, 0, 255)]))
    assert decoded.dtype == np.uint8
    assert decoded.tolist() == [[2, 0, IGNORE_INDEX, 1]]


def test_unknown_colour_raises_naming_file_and_colour() -> None:
    coding = LabelCoding.rgb(COLORS)
    with pytest.raises(InvalidLabelError, match=r"'gt\.tif' holds \(12, 34, 56\).*cmtgeo data check"):
        coding.decode(_rgb([(255, 255, 255), (12, 34, 56)]), "gt.tif")


def test_unknown_colour_can_be_ignored_instead() -> None:
    coding = LabelCoding.rgb(COLORS, unknown="ignore")
    assert coding.decode(_rgb([(12, 34, 56), (0, 0, 255)])).tolist() == [[IGNORE_INDEX, 1]]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32])
def test_values_decode_in_every_dtype(dtype: type) -> None:
    coding = LabelCoding.values([1, 2, 3], ignore=[0])
    decoded = coding.decode(np.array([[[3, 0, 1, 2]]], dtype=dtype))
    assert decoded.tolist() == [[2, IGNORE_INDEX, 0, 1]]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_unknown_value_raises(dtype: type) -> None:
    with pytest.raises(InvalidLabelError, match="holds 9,"):
        LabelCoding.values([1, 2, 3]).decode(np.array([[[1, 9]]], dtype=dtype), "mask.png")


def test_unknown_codes_counts_every_unknown_code() -> None:
    coding = LabelCoding.rgb(COLORS, ignore=[(0, 0, 0)])
    found = coding.unknown_codes(_rgb([(1, 2, 3), (1, 2, 3), (0, 0, 0), (9, 9, 9), (0, 0, 255)]))
    assert found == {"(1, 2, 3)": 2, "(9, 9, 9)": 1}
