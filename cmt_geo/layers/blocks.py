"""Residual attention blocks: norm -> attention -> residual, norm -> MLP -> residual (UNetFormer / fusion blocks)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cmt_geo.errors import ConfigError
from cmt_geo.layers.conv import ConvMLP
from cmt_geo.layers.fusion import batch_norm_affine, fold_input_affine, is_plain_batch_norm


def drop_path(probability: float) -> nn.Module:
    """timm's DropPath (stochastic depth), or Identity when probability is 0; timm is imported only when needed."""
    if probability <= 0:
        return nn.Identity()
    from timm.layers import DropPath

    return DropPath(probability)


class AttentionBlock(nn.Module):
    """x + DropPath(attention(BN(x)[, BN(context)])), then x + DropPath(MLP(BN(x))), all (B, C, H, W).

    With `context_channels`, the block is CMT-UNet's fusion block: the attention takes queries, keys and values from
    x (the ResNet feature) and its local branch from the context (the Mamba feature), which gets its own
    BatchNorm2d (`context_norm`), as the reference's fusion block does (its `normy`).

    Args:
        dim: channels C.
        attention: a module called as attention(x) or attention(x, context), returning (B, C, H, W).
        mlp_ratio: hidden width of the 1x1-conv MLP (ReLU6) relative to C.
        drop_path_rate: stochastic depth probability.
        context_channels: channels of the context input, or None for a plain block.
    """

    def __init__(
        self,
        dim: int,
        attention: nn.Module,
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.0,
        context_channels: int | None = None,
    ) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(dim)
        self.context_norm = nn.BatchNorm2d(context_channels) if context_channels else None
        self.attn = attention
        self.drop_path = drop_path(drop_path_rate)
        self.norm2: nn.Module = nn.BatchNorm2d(dim)
        self.mlp = ConvMLP(dim, int(dim * mlp_ratio))

    @torch.no_grad()
    def fuse_for_inference_(self) -> None:
        """In place, for inference: fold norm2 into the MLP's first 1x1 conv (exact: a 1x1 conv has no padding)."""
        if is_plain_batch_norm(self.norm2):
            assert isinstance(self.norm2, nn.BatchNorm2d)
            self.mlp.fc1 = fold_input_affine(self.mlp.fc1, *batch_norm_affine(self.norm2))
            self.norm2 = nn.Identity()

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """x: (B, C, H, W); context: (B, C_ctx, H, W) when the block has context channels -> (B, C, H, W)."""
        if self.context_norm is not None:
            if context is None:
                raise ConfigError("this fusion block needs a context feature: call it as block(x, context)")
            attended = self.attn(self.norm1(x), self.context_norm(context))
        else:
            attended = self.attn(self.norm1(x))
        x = x + self.drop_path(attended)
        return x + self.drop_path(self.mlp(self.norm2(x)))
