"""Optimizers and learning-rate schedules: parameter groups, warm-up, each decay's values."""

from __future__ import annotations

import math

import pytest
import torch

from cmt_geo.models import create_model
from cmt_geo.training.config import OptimSection, ScheduleSection
from cmt_geo.training.optim import LearningRateSchedule, build_optimizer, build_scheduler


def test_warmup_then_cosine() -> None:
    schedule = LearningRateSchedule(ScheduleSection(name="cosine", warmup_fraction=0.1, min_lr_ratio=0.1), 100)
    assert schedule(0) == pytest.approx(1 / 11)
    assert schedule(9) == pytest.approx(10 / 11)
    assert schedule(10) == pytest.approx(1.0)
    assert schedule(55) == pytest.approx(0.1 + 0.9 * 0.5)
    assert schedule(100) == pytest.approx(0.1)


def test_poly_multistep_and_constant() -> None:
    poly = LearningRateSchedule(ScheduleSection(name="poly", poly_power=2.0), 10)
    assert [poly(s) for s in (0, 5, 10)] == pytest.approx([1.0, 0.25, 0.0])
    steps = LearningRateSchedule(ScheduleSection(name="multistep", milestones=(0.5, 0.8), gamma=0.1), 10)
    assert [steps(s) for s in (0, 4, 5, 7, 8, 9)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    assert LearningRateSchedule(ScheduleSection(name="constant"), 10)(7) == 1.0


def test_warm_restarts_fill_the_training_with_cycles_each_twice_as_long() -> None:
    # 70 steps, 3 cycles of 10, 20 and 40 steps (T_0 = 10, T_mult = 2)
    schedule = LearningRateSchedule(ScheduleSection(name="cosine_restarts", restart_cycles=3, restart_mult=2), 70)
    assert [schedule(s) for s in (0, 10, 30)] == pytest.approx([1.0, 1.0, 1.0])
    assert schedule(5) == pytest.approx(0.5)
    assert schedule(20) == pytest.approx(0.5)
    assert schedule(50) == pytest.approx(0.5)
    assert schedule(29) == pytest.approx(0.5 * (1 + math.cos(math.pi * 19 / 20)))


def test_trunk_learning_rate_factor_and_frozen_parameters() -> None:
    model = create_model("unet", num_classes=3, in_channels=4)
    optimizer = build_optimizer(model, OptimSection(lr=1e-3, backbone_lr_factor=0.1))
    head, trunk = optimizer.param_groups
    assert (head["lr"], trunk["lr"]) == (1e-3, pytest.approx(1e-4))
    assert isinstance(optimizer, torch.optim.AdamW)
    model.encoder.requires_grad_(False)
    sgd = build_optimizer(model, OptimSection(name="sgd", momentum=0.8), lr=0.5)
    assert isinstance(sgd, torch.optim.SGD)
    assert len(sgd.param_groups) == 1
    assert sgd.param_groups[0]["lr"] == 0.5
    assert sgd.param_groups[0]["momentum"] == 0.8


def test_scheduler_steps_the_learning_rate() -> None:
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=1.0)
    scheduler = build_scheduler(optimizer, ScheduleSection(name="poly", poly_power=1.0), 4)
    seen = []
    for _ in range(4):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([1.0, 0.75, 0.5, 0.25])
    assert "lr_lambdas" in scheduler.state_dict()  # a plain function: nothing of the config is pickled
    assert scheduler.state_dict()["lr_lambdas"] == [None]
