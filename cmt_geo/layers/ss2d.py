"""SS2D, the 2-D selective-scan mixer of VMamba (v0), and the VSS block built on it."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cmt_geo.layers.blocks import drop_path
from cmt_geo.ops._scan_cpu import selective_scan_both_ways_cpu
from cmt_geo.ops.cross_scan import cross_merge, cross_scan
from cmt_geo.ops.selective_scan import ScanBackend, resolve_backend, selective_scan

DIRECTIONS = 4


class SS2D(nn.Module):
    """Selective scan over a feature map in four directions, gated by SiLU(z).

    in_proj → (x, z); x → depthwise conv + SiLU → four cross-scan sequences → per-direction x_proj to (dt, B, C) and
    dt_proj → selective scan (S4D-real A, D = 1, softplus(dt + bias)) → merge by sum → LayerNorm → · SiLU(z) → out_proj.
    Inference on the CPU (fp32, the "cpu" scan backend, no gradient) computes the same scans without copying the map
    per direction (`_fused_scan`): faster, and with a fraction of the memory.

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
        x, z = self.in_proj(x).chunk(2, dim=-1)
        x = F.silu(self.conv2d(x.permute(0, 3, 1, 2)))
        y = self._fused_scan(x) if self._fused_scan_applies(x) else self._scan(x)
        y = self.out_norm(y) * F.silu(z)
        return self.dropout(self.out_proj(y))

    def _fused_scan_applies(self, x: Tensor) -> bool:
        """Whether `_fused_scan` computes this forward: fp32 on the "cpu" scan backend, with no gradient to track."""
        tracked = torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in self.parameters()))
        return (
            not tracked and x.dtype == torch.float32 and resolve_backend(self.scan_backend, x.device, x.dtype) == "cpu"
        )

    def _fused_scan(self, x: Tensor) -> Tensor:
        """`_scan` for inference on the CPU, without `cross_scan`'s four copies of the map: directions 0 and 2 are the
        forward and backward scans of the map's rows, 1 and 3 those of its transpose (one copy), each pair in one
        kernel, projected at every position at once."""
        batch, channels, height, width = x.shape
        rows = x.permute(0, 2, 3, 1)  # (B, H, W, C), a view of a channels-last map
        along_rows = self._scan_both_ways(rows.reshape(batch, height * width, channels), (0, 2))
        along_columns = self._scan_both_ways(rows.transpose(1, 2).reshape(batch, height * width, channels), (1, 3))
        return along_rows.view(batch, height, width, channels) + along_columns.view(
            batch, width, height, channels
        ).transpose(1, 2)

    def _scan_both_ways(self, sequences: Tensor, directions: tuple[int, int]) -> Tensor:
        """(B, L, d_inner) → (B, L, d_inner): the scans of two opposite directions of these sequences, summed."""
        batch, length, channels = sequences.shape
        pair = list(directions)
        x_dbl = F.linear(sequences, self.x_proj_weight[pair].reshape(-1, channels)).view(batch, length, 2, -1)
        dts = x_dbl[..., : self.dt_rank].permute(2, 0, 1, 3).reshape(2, batch * length, self.dt_rank)
        deltas = torch.bmm(dts, self.dt_projs_weight[pair].transpose(1, 2)).view(2, batch, length, channels)
        return selective_scan_both_ways_cpu(
            sequences,
            deltas,
            x_dbl,
            -torch.exp(self.A_logs.view(DIRECTIONS, channels, -1)[pair].float()).reshape(2 * channels, -1),
            self.Ds.view(DIRECTIONS, channels)[pair].float().reshape(-1),
            self.dt_projs_bias[pair].float().reshape(-1),
        )

    def _scan(self, x: Tensor) -> Tensor:
        """(B, d_inner, H, W) → (B, H, W, d_inner): the four directional scans, merged."""
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
        merged = cross_merge(ys.reshape(batch, DIRECTIONS, channels, length), height, width)
        return merged.transpose(1, 2).reshape(batch, height, width, channels)


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
