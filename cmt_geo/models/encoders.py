"""Encoders with a feature contract: timm ResNet, the VMamba encoder and the fused CNN-Mamba encoder.

Every encoder maps (B, C_in, H, W), H and W multiples of 32, to a list of four feature maps and describes them in
`feature_info`: one `FeatureLevel(channels, stride)` per map, strides 4, 8, 16, 32.
"""

from __future__ import annotations

import logging
import socket
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from cmt_geo.errors import CheckpointError, ConfigError
from cmt_geo.layers.attention import GlobalLocalAttention
from cmt_geo.layers.blocks import AttentionBlock
from cmt_geo.layers.ss2d import VSSBlock
from cmt_geo.layers.wavelet import HaarPatchMerging

logger = logging.getLogger(__name__)

RESNET_STAGES = ("layer1", "layer2", "layer3", "layer4")
HUB_PROBE_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class FeatureLevel:
    """One encoder output: its channels and its stride relative to the input."""

    channels: int
    stride: int


def run_maybe_checkpointed(module: Callable[..., Tensor], enabled: bool, *inputs: Tensor) -> Tensor:
    """module(*inputs), through activation checkpointing when enabled (saves memory, recomputes in backward)."""
    if enabled and torch.is_grad_enabled():
        result: Tensor = checkpoint(module, *inputs, use_reentrant=False)
        return result
    return module(*inputs)


def adapt_input_conv(weight: Tensor, in_channels: int) -> Tensor:
    """Adapt a first-conv weight (C_out, 3, k, k) trained on RGB to `in_channels` bands by repeat-and-scale.

    One band gets the sum over RGB; N bands get the RGB filters repeated cyclically, scaled by 3 / N, so that an
    image whose bands all carry the same signal gives the activation of the grey RGB image (exactly for N = 1 or a
    multiple of 3, approximately otherwise).
    """
    if in_channels == weight.shape[1]:
        return weight
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = -(-in_channels // weight.shape[1])
    return weight.repeat(1, repeats, 1, 1)[:, :in_channels] * (weight.shape[1] / in_channels)


def hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether the Hugging Face hub that timm downloads from answers a TCP connect within `timeout` seconds.

    True without probing in offline mode (HF_HUB_OFFLINE=1: cached weights only) or behind an HTTPS proxy (which a
    direct connect cannot judge), so that only a machine without network fails fast instead of retrying for a minute.
    """
    from huggingface_hub import constants

    if constants.is_offline_mode() or urllib.request.getproxies().get("https"):
        return True
    endpoint = urllib.parse.urlsplit(constants.ENDPOINT)
    try:
        socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=timeout).close()
    except OSError:
        return False
    return True


class Encoder(nn.Module):
    """Base of the encoders: `forward(x)` returns one map per entry of `feature_info`."""

    feature_info: tuple[FeatureLevel, ...]
    gradient_checkpointing: bool = False


class ResNetEncoder(Encoder):
    """A timm ResNet as a feature extractor (`features_only`, strides 4/8/16/32) for any number of input bands.

    Args:
        name: timm ResNet name, e.g. "resnet18", "resnet50".
        in_channels: input bands.
        pretrained: load ImageNet weights from the timm hub (needs internet), the stem adapted to the bands.
    """

    def __init__(self, name: str = "resnet50", in_channels: int = 3, pretrained: bool = False) -> None:
        super().__init__()
        import timm

        if not name.startswith(("resnet", "resnext", "seresnet", "wide_resnet")) or name not in timm.list_models():
            raise ConfigError(f"backbone {name!r} is not a timm ResNet; use e.g. 'resnet18', 'resnet34', 'resnet50'")
        body: Any = timm.create_model(name, features_only=True, out_indices=(1, 2, 3, 4), in_chans=in_channels)
        self.body = body
        if pretrained:
            self._load_pretrained(name, in_channels)
        channels, strides = body.feature_info.channels(), body.feature_info.reduction()
        self.feature_info = tuple(FeatureLevel(c, s) for c, s in zip(channels, strides, strict=True))
        self.gradient_checkpointing = False

    def _load_pretrained(self, name: str, in_channels: int) -> None:
        import timm

        logger.info("loading pretrained %s weights from the timm hub", name)
        if not hub_reachable():
            raise CheckpointError(
                f"could not load pretrained {name} weights: the timm hub (Hugging Face) is not reachable; connect to "
                "the internet, set HF_HUB_OFFLINE=1 to use weights timm cached, or pass pretrained_backbone=False"
            )
        try:
            hub_model: Any = timm.create_model(name, features_only=True, out_indices=(1, 2, 3, 4), pretrained=True)
        except (OSError, RuntimeError) as error:  # no network, no cached file, or a broken download
            raise CheckpointError(
                f"could not load pretrained {name} weights from the timm hub ({error}); "
                "connect to the internet once (timm caches them) or use pretrained_backbone=False"
            ) from None
        state = hub_model.state_dict()
        first_conv = f"{hub_model.pretrained_cfg['first_conv']}.weight"  # "conv1.0.weight" for deep stems
        state[first_conv] = adapt_input_conv(state[first_conv], in_channels)
        self.body.load_state_dict(state)

    def stem(self, x: Tensor) -> Tensor:
        """conv1, bn1, act, maxpool: (B, C_in, H, W) -> (B, 64, H/4, W/4)."""
        body: Any = self.body
        return body.maxpool(body.act1(body.bn1(body.conv1(x))))

    def stages(self) -> list[nn.Module]:
        """The four residual stages, in order."""
        return [getattr(self.body, stage) for stage in RESNET_STAGES]

    def forward(self, x: Tensor) -> list[Tensor]:
        """(B, C_in, H, W) -> four maps (B, C_i, H / s_i, W / s_i)."""
        features = []
        x = self.stem(x)
        for stage in self.stages():
            x = run_maybe_checkpointed(stage, self.gradient_checkpointing, x)
            features.append(x)
        return features


class VMambaEncoder(Encoder):
    """The VMamba (v0) encoder of the reference: conv stem, patch embedding, VSS stages, Haar-DWT downsampling.

    stem: conv7x7 stride 2 (C_in -> stem_channels) + InstanceNorm; patch embedding: conv2x2 stride 2 + LayerNorm;
    stage i: depths[i] VSS blocks at dims[i]; between stages: `HaarPatchMerging` (dims[i] -> dims[i + 1]).

    Args:
        in_channels: input bands.
        dims: channels per stage.
        depths: VSS blocks per stage.
        stem_channels: channels of the stride-2 stem.
        d_state: SSM state size.
        expand: SS2D inner expansion.
        drop_path_rate: stochastic depth, rising linearly over all blocks up to this value.
        scan_backend: selective-scan backend ("auto", ...), passed to SS2D.
    """

    def __init__(
        self,
        in_channels: int = 3,
        dims: Sequence[int] = (96, 192, 384, 768),
        depths: Sequence[int] = (2, 2, 9, 2),
        stem_channels: int = 48,
        d_state: int = 16,
        expand: float = 2.0,
        drop_path_rate: float = 0.2,
        scan_backend: str = "auto",
    ) -> None:
        super().__init__()
        if len(dims) != 4 or len(depths) != 4:
            raise ConfigError(f"the VMamba encoder has 4 stages: got dims {tuple(dims)} and depths {tuple(depths)}")
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem_channels, 7, stride=2, padding=3), nn.InstanceNorm2d(stem_channels, affine=True)
        )
        self.patch_embed = nn.Conv2d(stem_channels, dims[0], 2, stride=2)
        self.patch_norm = nn.LayerNorm(dims[0])
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.stages = nn.ModuleList()
        for index, (dim, depth) in enumerate(zip(dims, depths, strict=True)):
            first = sum(depths[:index])
            self.stages.append(
                nn.Sequential(
                    *(
                        VSSBlock(dim, rates[first + block], d_state=d_state, expand=expand, scan_backend=scan_backend)
                        for block in range(depth)
                    )
                )
            )
        self.downsamples = nn.ModuleList(HaarPatchMerging(dims[i], dims[i + 1]) for i in range(3))
        self.feature_info = tuple(FeatureLevel(dim, 4 * 2**index) for index, dim in enumerate(dims))
        self.gradient_checkpointing = False
        self.apply(self._init_linear_and_norm)

    @staticmethod
    def _init_linear_and_norm(module: nn.Module) -> None:
        """VMamba's initialization: linear layers truncated-normal (std 0.02, zero bias), layer norms identity."""
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> list[Tensor]:
        """(B, C_in, H, W) -> four maps (B, dims[i], H / 2^(i+2), W / 2^(i+2)), stored channels-last."""
        x = self.patch_norm(self.patch_embed(self.stem(x)).permute(0, 2, 3, 1))  # (B, H/4, W/4, C) channels-last
        features = []
        for index, stage in enumerate(self.stages):
            for block in cast(nn.Sequential, stage):
                x = run_maybe_checkpointed(block, self.gradient_checkpointing, x)
            features.append(x.permute(0, 3, 1, 2))
            if index < len(self.downsamples):
                x = self.downsamples[index](x)
        return features


class CNNMambaEncoder(Encoder):
    """The fused CMT-UNet encoder: a ResNet and a VMamba encoder side by side, fused after every ResNet stage.

    After ResNet stage i, a fusion block (window attention with Q/K/V from the ResNet feature, local branch from
    the Mamba feature, wavelet projection, MLP) mixes both; the next ResNet stage consumes the fused map, and the
    fused maps are the encoder's outputs.

    Args:
        resnet: the CNN branch.
        mamba: the VMamba branch (same strides).
        num_heads: attention heads of the fusion blocks.
        window_size: attention window of the fusion blocks.
        mlp_ratio: MLP width of the fusion blocks.
        wavelet: PyWavelets name of the fusion blocks' wavelet projection.
        fused_attention: use scaled_dot_product_attention.
    """

    def __init__(
        self,
        resnet: ResNetEncoder,
        mamba: VMambaEncoder,
        num_heads: int = 16,
        window_size: int = 8,
        mlp_ratio: float = 4.0,
        wavelet: str = "db1",
        fused_attention: bool = True,
    ) -> None:
        super().__init__()
        self.resnet, self.mamba = resnet, mamba
        self.fusions = nn.ModuleList(
            AttentionBlock(
                cnn.channels,
                GlobalLocalAttention(
                    cnn.channels,
                    num_heads,
                    window_size,
                    local_channels=ssm.channels,
                    wavelet=wavelet,
                    fused=fused_attention,
                ),
                mlp_ratio=mlp_ratio,
                context_channels=ssm.channels,
            )
            for cnn, ssm in zip(resnet.feature_info, mamba.feature_info, strict=True)
        )
        self.feature_info = resnet.feature_info
        self.gradient_checkpointing = False

    def forward(self, x: Tensor) -> list[Tensor]:
        """(B, C_in, H, W), H and W multiples of 32 -> four fused maps (B, C_i, H / s_i, W / s_i)."""
        if x.shape[-2] % 32 or x.shape[-1] % 32:
            raise ConfigError(
                f"the CNN-Mamba encoder needs H and W multiples of 32, got {tuple(x.shape[-2:])}; "
                "pad the input (the segmentation models do this for you)"
            )
        mamba_features = self.mamba(x)
        features = []
        y = self.resnet.stem(x)
        for stage, fusion, context in zip(self.resnet.stages(), self.fusions, mamba_features, strict=True):
            y = run_maybe_checkpointed(stage, self.gradient_checkpointing, y)
            y = run_maybe_checkpointed(fusion, self.gradient_checkpointing, y, context)
            features.append(y)
        return features
