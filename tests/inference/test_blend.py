"""Hann blending of window logits in a rolling buffer: rows come out in order, once, normalized, and only where a
window had data."""

from __future__ import annotations

import numpy as np
import pytest
from rasterio.windows import Window

from cmt_geo.card import IGNORE_INDEX
from cmt_geo.inference.blend import RowBlender, hann_weights
from cmt_geo.io.grid import grid_windows


def test_hann_weights_are_positive_symmetric_and_peak_in_the_middle() -> None:
    weights = hann_weights(8, 6)
    assert (weights > 0).all()
    assert np.allclose(weights, weights[::-1, ::-1])
    assert weights[3:5, 2:4].min() == weights.max()


def test_blended_rows_reproduce_a_constant_field_and_leave_unseen_pixels_uncovered() -> None:
    height, width, tile = 50, 37, (16, 16)
    blender = RowBlender(2, height, width, tile, probabilities=True)
    field = np.stack([np.full((height, width), 0.25), np.full((height, width), 0.75)]).astype(np.float32)
    rows_seen: list[tuple[int, int]] = []
    out = np.zeros_like(field)
    covered = np.zeros((height, width), dtype=bool)
    for window in grid_windows(height, width, tile, (12, 12)):
        for rows in blender.finish_until(int(window.row_off)):
            rows_seen.append((rows.top, rows.bottom))
            assert rows.probabilities is not None
            out[:, rows.top : rows.bottom], covered[rows.top : rows.bottom] = rows.probabilities, rows.covered
        r, c = int(window.row_off), int(window.col_off)
        valid = np.ones(tile, dtype=bool)
        if (r, c) == (0, 0):
            valid[:4, :4] = False  # pixels no window sees as valid stay uncovered
        blender.add(window, np.log(field[:, r : r + 16, c : c + 16]), valid)
    for rows in blender.finish_until(height):
        assert rows.probabilities is not None
        rows_seen.append((rows.top, rows.bottom))
        out[:, rows.top : rows.bottom], covered[rows.top : rows.bottom] = rows.probabilities, rows.covered
    assert [top for top, _ in rows_seen] == [0, *[bottom for _, bottom in rows_seen[:-1]]]
    assert rows_seen[-1][1] == height
    assert not covered[:4, :4].any()
    assert covered.sum() == height * width - 16
    assert np.allclose(out[:, covered], field[:, covered], atol=1e-6)


def test_overlapping_windows_are_weighted_towards_their_centres() -> None:
    blender = RowBlender(2, 8, 12, (8, 8), probabilities=True)
    left = np.log(np.broadcast_to(np.array([0.9, 0.1], np.float32)[:, None, None], (2, 8, 8)))
    blender.add(Window(0, 0, 8, 8), left, np.ones((8, 8), bool))
    blender.add(Window(4, 0, 8, 8), left[::-1])
    [rows] = list(blender.finish_until(8))
    assert rows.probabilities is not None
    profile = rows.probabilities[1, 4]
    assert profile[:4] == pytest.approx(0.1, abs=1e-6)
    assert profile[8:] == pytest.approx(0.9, abs=1e-6)
    assert (np.diff(profile[4:8]) > 0).all()  # a smooth hand-over across the overlap, not a hard seam


def test_classes_are_the_most_probable_blended_class_and_no_data_where_uncovered() -> None:
    rng = np.random.default_rng(0)
    height, width, tile = 40, 30, (16, 16)
    blender = RowBlender(5, height, width, tile, probabilities=True)
    classes = np.zeros((height, width), np.uint8)
    blended = np.zeros((5, height, width), np.float32)
    for window in grid_windows(height, width, tile, (10, 10)):
        for rows in blender.finish_until(int(window.row_off)):
            assert rows.probabilities is not None
            classes[rows.top : rows.bottom], blended[:, rows.top : rows.bottom] = rows.classes, rows.probabilities
        valid = np.ones(tile, bool)
        if int(window.row_off) == 0 and int(window.col_off) == 0:
            valid[:3, :3] = False
        blender.add(window, np.log(rng.dirichlet(np.ones(5), size=tile).transpose(2, 0, 1)).astype(np.float32), valid)
    for rows in blender.finish_until(height):
        assert rows.probabilities is not None
        classes[rows.top : rows.bottom], blended[:, rows.top : rows.bottom] = rows.classes, rows.probabilities
    assert (classes[:3, :3] == IGNORE_INDEX).all()
    seen = np.ones((height, width), bool)
    seen[:3, :3] = False
    assert (classes[seen] == blended.argmax(axis=0)[seen]).all()
    assert np.allclose(blended[:, seen].sum(axis=0), 1, atol=1e-5)


def test_windows_outside_the_buffered_rows_are_refused() -> None:
    blender = RowBlender(2, 64, 32, (16, 16), top=16)
    with pytest.raises(ValueError, match="outside the rows"):
        blender.add(Window(0, 0, 16, 16), np.zeros((2, 16, 16), np.float32))
    with pytest.raises(ValueError, match="outside the rows"):
        blender.add(Window(24, 16, 16, 16), np.zeros((2, 16, 16), np.float32))
    with pytest.raises(ValueError, match="span more than"):
        list(blender.finish_until(48))


def test_class_only_blending_gives_the_classes_and_coverage_of_the_probabilities_path() -> None:
    """Without probabilities the per-pixel weight is not kept: coverage comes from the sums themselves."""
    rng = np.random.default_rng(1)
    height, width, tile = 37, 29, (16, 16)
    windows = list(grid_windows(height, width, tile, (12, 12)))
    inputs = []
    for index, _ in enumerate(windows):
        valid = rng.random(tile) > 0.3 if index % 3 else np.zeros(tile, bool)  # some windows without any data
        inputs.append((rng.normal(size=(4, *tile)).astype(np.float32) * 3, valid))
    results = []
    for keep in (True, False):
        blender = RowBlender(4, height, width, tile, probabilities=keep)
        classes, covered = np.zeros((height, width), np.uint8), np.zeros((height, width), bool)
        for window, (logits, valid) in zip(windows, inputs, strict=True):
            for rows in blender.finish_until(int(window.row_off)):
                classes[rows.top : rows.bottom], covered[rows.top : rows.bottom] = rows.classes, rows.covered
            blender.add(window, logits, valid)
        for rows in blender.finish_until(height):
            classes[rows.top : rows.bottom], covered[rows.top : rows.bottom] = rows.classes, rows.covered
        results.append((classes, covered))
    (with_probabilities, covered), (class_only, covered_only) = results
    expected = np.zeros((height, width), bool)  # where some window had valid data
    for window, (_, valid) in zip(windows, inputs, strict=True):
        expected[window.toslices()] |= valid[: int(window.height), : int(window.width)]
    assert 0 < expected.mean() < 1
    assert np.array_equal(covered, expected)
    assert np.array_equal(covered_only, expected)
    assert np.array_equal(with_probabilities, class_only)
    assert (class_only[~covered] == IGNORE_INDEX).all()
