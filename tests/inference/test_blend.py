"""Hann blending in a rolling buffer: rows come out in order, once, normalized, and only where a window had data."""

from __future__ import annotations

import numpy as np
from rasterio.windows import Window

from cmt_geo.inference.blend import RowBlender, hann_weights
from cmt_geo.io.grid import grid_windows


def test_hann_weights_are_positive_symmetric_and_peak_in_the_middle() -> None:
    weights = hann_weights(8, 6)
    assert (weights > 0).all()
    assert np.allclose(weights, weights[::-1, ::-1])
    assert weights[3:5, 2:4].min() == weights.max()


def test_blended_rows_reproduce_a_constant_field_and_leave_unseen_pixels_uncovered() -> None:
    height, width, tile = 50, 37, (16, 16)
    blender = RowBlender(2, height, width, tile)
    field = np.stack([np.full((height, width), 0.25), np.full((height, width), 0.75)]).astype(np.float32)
    rows_seen: list[tuple[int, int]] = []
    out = np.zeros_like(field)
    covered = np.zeros((height, width), dtype=bool)
    for window in grid_windows(height, width, tile, (12, 12)):
        for rows in blender.finish_until(int(window.row_off)):
            rows_seen.append((rows.top, rows.bottom))
            out[:, rows.top : rows.bottom], covered[rows.top : rows.bottom] = rows.probabilities, rows.covered
        r, c = int(window.row_off), int(window.col_off)
        valid = np.ones(tile, dtype=bool)
        if (r, c) == (0, 0):
            valid[:4, :4] = False  # pixels no window sees as valid stay uncovered
        blender.add(window, field[:, r : r + 16, c : c + 16], valid)
    for rows in blender.finish_until(height):
        rows_seen.append((rows.top, rows.bottom))
        out[:, rows.top : rows.bottom], covered[rows.top : rows.bottom] = rows.probabilities, rows.covered
    assert [top for top, _ in rows_seen] == [0, *[bottom for _, bottom in rows_seen[:-1]]]
    assert rows_seen[-1][1] == height
    assert not covered[:4, :4].any()
    assert covered.sum() == height * width - 16
    assert np.allclose(out[:, covered], field[:, covered], atol=1e-6)


def test_overlapping_windows_are_weighted_towards_their_centres() -> None:
    blender = RowBlender(1, 8, 12, (8, 8))
    left, right = np.zeros((1, 8, 8), np.float32), np.ones((1, 8, 8), np.float32)
    blender.add(Window(0, 0, 8, 8), left, np.ones((8, 8), bool))
    blender.add(Window(4, 0, 8, 8), right, np.ones((8, 8), bool))
    [rows] = list(blender.finish_until(8))
    profile = rows.probabilities[0, 4]
    assert profile[0] == 0
    assert profile[-1] == 1
    assert (np.diff(profile[4:8]) > 0).all()  # a smooth hand-over across the overlap, not a hard seam
