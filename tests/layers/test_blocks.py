"""Residual attention blocks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cmt_geo.errors import ConfigError
from cmt_geo.layers.attention import GlobalLocalAttention
from cmt_geo.layers.blocks import AttentionBlock, drop_path


def test_drop_path_is_identity_at_zero_and_timm_droppath_otherwise() -> None:
    assert isinstance(drop_path(0.0), nn.Identity)
    layer = drop_path(0.5).train()
    x = torch.ones(64, 3, 2, 2)
    kept = layer(x)[:, 0, 0, 0]
    assert set(kept.unique().tolist()) <= {0.0, 2.0}


def test_fusion_block_uses_the_context_feature() -> None:
    block = AttentionBlock(16, GlobalLocalAttention(16, 2, 4, local_channels=8), context_channels=8).eval()
    x, context = torch.randn(1, 16, 8, 8), torch.randn(1, 8, 8, 8)
    out = block(x, context)
    assert out.shape == x.shape
    assert not torch.allclose(out, block(x, context + 1.0))
    with pytest.raises(ConfigError, match="needs a context feature"):
        block(x)


def test_plain_block_is_residual() -> None:
    block = AttentionBlock(16, GlobalLocalAttention(16, 2, 4))
    with torch.no_grad():
        block.mlp.fc2.weight.zero_()
        block.mlp.fc2.bias.zero_()
        block.attn.proj[1].weight.zero_()  # the pointwise conv of the wavelet projection
    x = torch.randn(2, 16, 8, 8)
    torch.testing.assert_close(block(x), x)
