"""Multi-scale attention aggregation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cmt_geo.errors import ConfigError
from cmt_geo.layers.msaa import ChannelAttention, MultiScaleAttentionAggregation, SpatialAttention


@pytest.mark.parametrize("target", [0, 1, 2])
def test_msaa_output_has_the_target_skip_shape(target: int) -> None:
    skips = [torch.randn(2, 16, 32, 30), torch.randn(2, 24, 16, 15), torch.randn(2, 40, 8, 8)]
    out_channels = skips[target].shape[1]
    msaa = MultiScaleAttentionAggregation([16, 24, 40], out_channels, target)
    assert msaa(skips).shape == skips[target].shape


def test_msaa_sees_every_scale() -> None:
    skips = [torch.randn(1, 8, 16, 16), torch.randn(1, 8, 8, 8), torch.randn(1, 8, 4, 4)]
    msaa = MultiScaleAttentionAggregation([8, 8, 8], 8, 0).eval()
    changed = [skips[0], skips[1], skips[2] + 1.0]
    assert not torch.allclose(msaa(skips), msaa(changed))


def test_msaa_reduces_the_concatenated_resized_skips_with_one_1x1_conv_as_the_reference() -> None:
    skips = [torch.randn(1, 8, 16, 16), torch.randn(1, 12, 8, 8), torch.randn(1, 16, 4, 4)]
    msaa = MultiScaleAttentionAggregation([8, 12, 16], 12, target=1).eval()
    resized = [F.interpolate(skip, size=(8, 8), mode="bilinear", align_corners=False) for skip in skips]
    fused = msaa.down(torch.cat(resized, dim=1))
    channel = fused * msaa.channel_attention(fused)
    multi_scale = sum(conv(fused) for conv in msaa.convs)
    expected = msaa.project(channel + multi_scale * msaa.spatial_attention(multi_scale))
    torch.testing.assert_close(msaa(skips), expected, atol=1e-5, rtol=1e-5)


def test_msaa_needs_three_skips() -> None:
    with pytest.raises(ConfigError, match="exactly three skips"):
        MultiScaleAttentionAggregation([8, 8], 8, 0)


def test_attention_gates_have_the_right_shapes_and_range() -> None:
    x = torch.randn(2, 12, 6, 7)
    channel, spatial = ChannelAttention(12)(x), SpatialAttention()(x)
    assert channel.shape == (2, 12, 1, 1)
    assert spatial.shape == (2, 1, 6, 7)
    assert ((channel > 0) & (channel < 1)).all()
    assert ((spatial > 0) & (spatial < 1)).all()
