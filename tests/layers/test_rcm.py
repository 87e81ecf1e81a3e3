"""Rectangular self-calibration module."""

from __future__ import annotations

import torch

from cmt_geo.layers.rcm import RectangularCalibrationModule, RectangularSelfCalibration


def test_rcm_starts_close_to_identity_and_learns_its_layer_scale() -> None:
    rcm = RectangularCalibrationModule(16)
    x = torch.randn(2, 16, 9, 13)
    out = rcm(x)
    assert out.shape == x.shape
    assert (out - x).abs().max() < 1e-3
    out.sum().backward()
    assert rcm.gamma.grad is not None
    assert rcm.gamma.grad.abs().sum() > 0


def test_self_calibration_gate_depends_on_row_and_column_context() -> None:
    mixer = RectangularSelfCalibration(4).eval()
    x = torch.randn(1, 4, 8, 8)
    far = x.clone()
    far[..., 0, 7] += 5.0  # outside the 3x3 neighbourhood of (0, 0), but in its row, so in its context
    assert not torch.allclose(mixer(x)[..., 0, 0], mixer(far)[..., 0, 0])
