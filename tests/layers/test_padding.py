"""Padding helpers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cmt_geo.layers.padding import pad_reflect, pad_to_multiple


@pytest.mark.parametrize(("height", "width"), [(5, 7), (8, 5), (6, 8)])
def test_pad_to_multiple_reflects_at_bottom_right(height: int, width: int) -> None:
    x = torch.arange(2 * height * width, dtype=torch.float32).reshape(1, 2, height, width)
    padded = pad_to_multiple(x, 4)
    assert padded.shape == (1, 2, 8, 8)
    expected = F.pad(x, (0, 8 - width, 0, 8 - height), mode="reflect")
    torch.testing.assert_close(padded, expected, rtol=0, atol=0)


@pytest.mark.parametrize(("height", "width"), [(4, 4), (8, 12), (32, 32)])
def test_pad_to_multiple_returns_an_aligned_input_as_it_is(height: int, width: int) -> None:
    x = torch.randn(1, 3, height, width)
    assert pad_to_multiple(x, 4) is x


def test_pad_reflect_falls_back_to_replicate_on_tiny_maps() -> None:
    x = torch.randn(1, 1, 1, 2)
    padded = pad_reflect(x, (0, 6, 0, 7))
    assert padded.shape == (1, 1, 8, 8)
    torch.testing.assert_close(padded[..., -1, -1], x[..., 0, 1])


def test_replicate_fallback_equals_torch_replicate_padding() -> None:
    x = torch.randn(2, 3, 2, 3).to(memory_format=torch.channels_last)
    torch.testing.assert_close(pad_reflect(x, (1, 5, 0, 6)), F.pad(x, (1, 5, 0, 6), mode="replicate"))
