"""Decoder heads."""

from __future__ import annotations

import torch

from cmt_geo.layers.heads import FeatureRefinementHead, SegmentationHead, WeightedFusion


def test_weighted_fusion_weights_skip_and_upsampled_feature() -> None:
    fusion = WeightedFusion(skip_channels=12, decode_channels=8)
    with torch.no_grad():
        fusion.weights.copy_(torch.tensor([1.0, -3.0]))  # relu -> only the skip counts
    x, skip = torch.randn(2, 8, 5, 6), torch.randn(2, 12, 10, 11)
    torch.testing.assert_close(fusion.fuse(x, skip), fusion.pre_conv(skip), atol=1e-6, rtol=1e-5)
    assert fusion(x, skip).shape == (2, 8, 10, 11)


def test_feature_refinement_and_segmentation_heads() -> None:
    x, skip = torch.randn(2, 16, 4, 5), torch.randn(2, 24, 8, 9)
    for wavelet_convs in (True, False):
        refined = FeatureRefinementHead(24, 16, wavelet_convs=wavelet_convs)(x, skip)
        assert refined.shape == (2, 16, 8, 9)
        assert (refined >= 0).all()
        assert (refined <= 6).all()
    assert SegmentationHead(16, 7)(refined).shape == (2, 7, 8, 9)
