"""Decoders built from feature_info."""

from __future__ import annotations

import pytest
import torch

from cmt_geo.errors import ConfigError
from cmt_geo.layers.attention import GlobalLocalAttention, HybridAttention
from cmt_geo.layers.conv import ConvBNReLU
from cmt_geo.layers.wavelet import WaveletConvBNReLU
from cmt_geo.models.decoders import UNetDecoder, UNetFormerDecoder
from cmt_geo.models.encoders import FeatureLevel

LEVELS = tuple(FeatureLevel(channels, stride) for channels, stride in ((24, 4), (40, 8), (56, 16), (72, 32)))


def _features(height: int = 64, width: int = 96) -> list[torch.Tensor]:
    return [torch.randn(2, level.channels, height // level.stride, width // level.stride) for level in LEVELS]


@pytest.mark.parametrize(
    "options",
    [{}, {"hybrid": False, "wavelet_convs": False}, {"use_msaa": True, "use_rcm": True}],
    ids=["cmt-unet", "unetformer", "msaa+rcm"],
)
def test_unetformer_decoders_return_logits_at_stride_4(options: dict[str, bool]) -> None:
    decoder = UNetFormerDecoder(LEVELS, num_classes=5, decode_channels=32, num_heads=4, **options)
    logits = decoder(_features())
    assert logits.shape == (2, 5, 16, 24)
    logits.mean().backward()


@pytest.mark.parametrize(
    ("options", "conv_bn_relu", "attention"),
    [
        ({}, WaveletConvBNReLU, HybridAttention),
        ({"hybrid": False, "wavelet_convs": False}, ConvBNReLU, GlobalLocalAttention),
    ],
    ids=["cmt-unet", "unetformer"],
)
def test_the_four_conv_bn_relu_and_the_attention_follow_the_decoder_kind(
    options: dict[str, bool], conv_bn_relu: type, attention: type
) -> None:
    decoder = UNetFormerDecoder(LEVELS, num_classes=5, decode_channels=32, num_heads=4, **options)
    places = [decoder.fusions[0].post_conv, decoder.fusions[1].post_conv, decoder.refine.post_conv, decoder.head[0]]
    assert all(type(place) is conv_bn_relu for place in places)
    assert all(type(block.attn) is attention for block in decoder.blocks)


def test_msaa_and_rcm_switches_add_their_modules() -> None:
    plain = UNetFormerDecoder(LEVELS, 5, decode_channels=32, num_heads=4)
    full = UNetFormerDecoder(LEVELS, 5, decode_channels=32, num_heads=4, use_msaa=True, use_rcm=True)
    assert plain.msaa is None
    assert plain.rcm is None
    assert full.msaa is not None
    assert full.rcm is not None
    assert sum(p.numel() for p in full.parameters()) > sum(p.numel() for p in plain.parameters())


def test_unet_decoder_returns_logits_at_stride_4() -> None:
    logits = UNetDecoder(LEVELS, num_classes=3, channels=(32, 16, 8))(_features(32, 64))
    assert logits.shape == (2, 3, 8, 16)


def test_decoders_need_four_levels() -> None:
    with pytest.raises(ConfigError, match="four encoder levels"):
        UNetFormerDecoder(LEVELS[:3], 5)
    with pytest.raises(ConfigError, match="four encoder levels"):
        UNetDecoder(LEVELS[1:], 5)
