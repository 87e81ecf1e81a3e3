"""SS2D, the 2-D selective-scan mixer of VMamba (v0), and the VSS block built on it."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cmt_geo.layers.blocks import drop_path
from cmt_geo.ops.cross_scan import cross_merge, cross_scan
from cmt_geo.ops.selective_scan import ScanBackend, selective_scan

DIRECTIONS = 4


class SS2D(nn.Module):
    """Selective scan over a feature map in four directions, gated by SiLU(z).

    in_proj → (x, z); x → depthwise conv + SiLU → four cross-scan sequences → per-direction x_proj to (dt, B, C) and
    dt_proj → selective scan (S4D-real A, D = 1, softplus(dt + bias)) → merge by sum → LayerNorm → · SiLU(z) → out_proj.

    Args:
        d_model: channels in and out.
        d_state: SSM state size N.
        expand: inner channels = expand · d_model.
        dt_rank: rank of the step-size projection; None for ceil(d_model / 16).
        d_conv: kernel size of the depthwise convolution.
        dt_min: smallest initial step size softplus(dt bias).
        dt_max: largest initial step size.
        dropout: dropout after out_proj.
        scan_backend: selective-scan backend ("auto", "mamba", "cpu", "torch", "ref").
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        expand: float = 2.0,
        dt_rank: int | None = None,
        d_conv: int = 3,
        dt_min: float = 1e-3,
        dt_max: float = 0.1,
        dropout: float = 0.0,
        scan_backend: ScanBackend | str = "auto",
    ) -> None:
        super().__init__()
        self.d_state = d_state
        self.d_inner = d_inner = int(expand * d_model)
        self.dt_rank = dt_rank = dt_rank if dt_rank is not None else math.ceil(d_model / 16)
        self.scan_backend = scan_backend
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=False)
        self.conv2d = nn.Conv2d(d_inner, d_inner, d_conv, padding=(d_conv - 1) // 2, groups=d_inner, bias=True)
        self.x_proj_weight = nn.Parameter(torch.empty(DIRECTIONS, dt_rank + 2 * d_state, d_inner))
        self.dt_projs_weight = nn.Parameter(torch.empty(DIRECTIONS, d_inner, dt_rank))
        self.dt_projs_bias = nn.Parameter(torch.empty(DIRECTIONS, d_inner))
        self.A_logs = nn.Parameter(torch.empty(DIRECTIONS * d_inner, d_state))
        self.Ds = nn.Parameter(torch.empty(DIRECTIONS * d_inner))
        self.out_norm = nn.LayerNorm(d_inner)
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.reset_ssm_parameters(dt_min, dt_max)

    @torch.no_grad()
    def reset_ssm_parameters(self, dt_min: float = 1e-3, dt_max: float = 0.1, dt_floor: float = 1e-4) -> None:
        """VMamba's initialization: S4D-real A = -(1..N), D = 1, softplus(dt bias) log-uniform in [dt_min, dt_max]."""
        bound = 1 / math.sqrt(self.d_inner)
        nn.init.uniform_(self.x_proj_weight, -bound, bound)
        nn.init.uniform_(self.dt_projs_weight, -(self.dt_rank**-0.5), self.dt_rank**-0.5)
        dt = torch.exp(torch.rand_like(self.dt_projs_bias) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_floor)
        self.dt_projs_bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse of softplus
        self.A_logs.copy_(torch.log(torch.arange(1, self.d_state + 1, dtype=torch.float32)).expand_as(self.A_logs))
        self.Ds.fill_(1.0)

    def forward(self, x: Tensor) -> Tensor:
        """(B, H, W, C) → (B, H, W, C)."""
        batch, height, width, _ = x.shape
        x, z = self.in_proj(x).chunk(2, dim=-1)
        x = F.silu(self.conv2d(x.permute(0, 3, 1, 2)))
        y = self._scan(x).transpose(1, 2).reshape(batch, height, width, self.d_inner)
        y = self.out_norm(y) * F.silu(z)
        return self.dropout(self.out_proj(y))

    def _scan(self, x: Tensor) -> Tensor:
        """(B, d_inner, H, W) → (B, d_inner, H·W): the four directional scans, merged."""
        batch, channels, height, width = x.shape
        length = height * width
        xs = cross_scan(x)  # (B, 4, d_inner, L)
        x_dbl = torch.einsum("bkdl,kcd->bkcl", xs, self.x_proj_weight.to(xs.dtype))
        dts, Bs, Cs = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=2)
        dts = torch.einsum("bkrl,kdr->bkdl", dts, self.dt_projs_weight.to(dts.dtype))
        ys = selective_scan(
            xs.reshape(batch, -1, length),
            dts.reshape(batch, -1, length),
            -torch.exp(self.A_logs.float()),
            Bs,
            Cs,
            self.Ds.float(),
            delta_bias=self.dt_projs_bias.float().reshape(-1),
            delta_softplus=True,
            backend=self.scan_backend,
        )
        return cross_merge(ys.reshape(batch, DIRECTIONS, channels, length), height, width)


class VSSBlock(nn.Module):
    """x + DropPath(SS2D(LayerNorm(x))) on (B, H, W, C) maps, with no MLP (VMamba v0).

    Args:
        dim: channels.
        drop_path_rate: stochastic-depth rate.
        d_state: SSM state size.
        expand: SS2D inner expansion.
        scan_backend: selective-scan backend.
    """

    def __init__(
        self,
        dim: int,
        drop_path_rate: float = 0.0,
        d_state: int = 16,
        expand: float = 2.0,
        scan_backend: ScanBackend | str = "auto",
    ) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.mixer = SS2D(dim, d_state=d_state, expand=expand, scan_backend=scan_backend)
        self.drop_path = drop_path(drop_path_rate)

    def forward(self, x: Tensor) -> Tensor:
        """(B, H, W, C) → (B, H, W, C)."""
        return x + self.drop_path(self.mixer(self.norm(x)))
