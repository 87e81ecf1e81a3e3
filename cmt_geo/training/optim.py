"""Optimizers (AdamW, SGD) with a slower pretrained trunk, and learning-rate schedules per optimizer step."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from cmt_geo.models.encoders import ResNetEncoder
from cmt_geo.training.config import OptimSection, ScheduleSection


def build_optimizer(model: nn.Module, config: OptimSection, lr: float | None = None) -> torch.optim.Optimizer:
    """The optimizer of a model's trainable parameters; the ResNet trunk's learning rate is scaled by
    `config.backbone_lr_factor`.

    Args:
        model: the module to train (parameters with requires_grad=False are left out).
        config: the optimizer section.
        lr: the peak learning rate; `config.lr` when None (fine-tuning lowers it).
    """
    lr = config.lr if lr is None else lr
    trunk = {id(p) for module in model.modules() if isinstance(module, ResNetEncoder) for p in module.parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in trainable if id(p) not in trunk], "lr": lr},
        {"params": [p for p in trainable if id(p) in trunk], "lr": lr * config.backbone_lr_factor},
    ]
    groups = [group for group in groups if group["params"]]
    if config.name == "sgd":
        return torch.optim.SGD(
            groups, lr=lr, momentum=config.momentum, weight_decay=config.weight_decay, nesterov=config.nesterov
        )
    return torch.optim.AdamW(groups, lr=lr, betas=config.betas, weight_decay=config.weight_decay)


@dataclass(frozen=True)
class LearningRateSchedule:
    """The learning-rate multiplier at each optimizer step, for `torch.optim.lr_scheduler.LambdaLR`.

    A linear warm-up over the first `warmup_fraction` of the steps, then the decay the section names, reaching its
    end at `total_steps`.

    Args:
        config: the schedule section.
        total_steps: optimizer steps of the whole training.
    """

    config: ScheduleSection
    total_steps: int

    def __call__(self, step: int) -> float:
        c = self.config
        total = max(self.total_steps, 1)
        warmup = int(c.warmup_fraction * total)
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = min((step - warmup) / max(total - warmup, 1), 1.0)
        floor = c.min_lr_ratio
        if c.name == "constant":
            return 1.0
        if c.name == "poly":
            return floor + (1 - floor) * (1 - progress) ** c.poly_power
        if c.name == "multistep":
            return float(c.gamma ** sum(progress >= m for m in c.milestones))
        if c.name == "cosine_restarts":
            progress = _cycle_position(progress, c.restart_cycles, c.restart_mult)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def _cycle_position(progress: float, cycles: int, mult: float) -> float:
    """Where in its cosine cycle `progress` (0..1 of all cycles) falls, 0..1, for cycles each `mult` times longer
    than the last."""
    lengths = [mult**index for index in range(cycles)]
    at = progress * sum(lengths)
    for length in lengths:
        if at < length:
            return at / length
        at -= length
    return 1.0


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: ScheduleSection, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step scheduler following `LearningRateSchedule`. Its step count saves and resumes with the optimizer;
    the schedule itself is rebuilt from the config (a plain function, so LambdaLR does not pickle it)."""
    schedule = LearningRateSchedule(config, total_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: schedule(step))
