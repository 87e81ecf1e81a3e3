"""Padding helpers."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cmt_geo.layers.padding import pad_reflect, pad_to_multiple


def test_pad_to_multiple_reflects_at_bottom_right() -> None:
    x = torch.arange(2 * 5 * 7, dtype=torch.float32).reshape(1, 2, 5, 7)
    padded = pad_to_multiple(x, 4)
    assert padded.shape == (1, 2, 8, 8)
    torch.testing.assert_close(padded[..., :5, :7], x)
    torch.testing.assert_close(padded[..., 5, :7], x[..., 3, :])  # reflection, not zeros
    assert pad_to_multiple(x[..., :4, :4], 4) is not None


def test_pad_reflect_falls_back_to_replicate_on_tiny_maps() -> None:
    x = torch.randn(1, 1, 1, 2)
    padded = pad_reflect(x, (0, 6, 0, 7))
    assert padded.shape == (1, 1, 8, 8)
    torch.testing.assert_close(padded[..., -1, -1], x[..., 0, 1])


def test_replicate_fallback_equals_torch_replicate_padding() -> None:
    x = torch.randn(2, 3, 2, 3).to(memory_format=torch.channels_last)
    torch.testing.assert_close(pad_reflect(x, (1, 5, 0, 6)), F.pad(x, (1, 5, 0, 6), mode="replicate"))
