"""The four SS2D scan orders of a feature map, and their merge back into one map.

Direction 0 reads row by row, 1 column by column, 2 and 3 are 0 and 1 reversed. `cross_merge` is the adjoint of
`cross_scan`: it brings each direction back to row-major order and sums them.
"""

from __future__ import annotations

from torch import Tensor


def cross_scan(x: Tensor) -> Tensor:
    """(B, C, H, W) → (B, 4, C, H·W): row-major, column-major, and both reversed."""
    batch, channels, height, width = x.shape
    xs = x.new_empty(batch, 4, channels, height * width)
    xs[:, 0] = x.flatten(2)
    xs[:, 1] = x.transpose(2, 3).flatten(2)
    xs[:, 2:] = xs[:, :2].flip(-1)
    return xs


def cross_merge(ys: Tensor, height: int, width: int) -> Tensor:
    """(B, 4, C, H·W) in the four scan orders → (B, C, H·W) row-major, summed over directions."""
    batch, _, channels, length = ys.shape
    ys = ys[:, :2] + ys[:, 2:].flip(-1)
    column_major = ys[:, 1].reshape(batch, channels, width, height).transpose(2, 3).reshape(batch, channels, length)
    return ys[:, 0] + column_major
