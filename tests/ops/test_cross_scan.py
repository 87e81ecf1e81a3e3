import pytest
import torch

from cmt_geo.ops import cross_merge, cross_scan


@pytest.mark.parametrize(("height", "width"), [(1, 1), (3, 5), (4, 4), (7, 2)])
def test_each_direction_is_the_expected_permutation(height: int, width: int) -> None:
    index = torch.arange(height * width, dtype=torch.float32).reshape(1, 1, height, width)
    xs = cross_scan(index.expand(2, 3, height, width))
    assert xs.shape == (2, 4, 3, height * width)
    row_major = torch.arange(height * width)
    column_major = torch.arange(height * width).reshape(height, width).t().flatten()
    expected = [row_major, column_major, row_major.flip(0), column_major.flip(0)]
    for direction, order in enumerate(expected):
        sequence = xs[1, direction, 2].long()
        assert torch.equal(sequence.sort().values, row_major)  # a permutation of the pixels
        assert torch.equal(sequence, order)


@pytest.mark.parametrize(("height", "width"), [(3, 5), (6, 6)])
def test_merge_is_the_adjoint_of_scan(height: int, width: int) -> None:
    x = torch.randn(2, 3, height, width, dtype=torch.float64)
    ys = torch.randn(2, 4, 3, height * width, dtype=torch.float64)
    lhs = (cross_scan(x) * ys).sum()
    rhs = (x.flatten(2) * cross_merge(ys, height, width)).sum()
    torch.testing.assert_close(lhs, rhs)


def test_merge_of_scan_counts_each_pixel_four_times() -> None:
    x = torch.randn(1, 2, 5, 3)
    torch.testing.assert_close(cross_merge(cross_scan(x), 5, 3), 4 * x.flatten(2))


def test_scan_is_differentiable() -> None:
    x = torch.randn(1, 2, 4, 3, requires_grad=True)
    cross_scan(x).sum().backward()
    assert x.grad is not None
    torch.testing.assert_close(x.grad, torch.full_like(x, 4.0))
