"""Each loss against values computed by hand; ignored pixels never count; class weights from pixel counts."""

from __future__ import annotations

import math

import pytest
import torch

from cmt_geo.card import IGNORE_INDEX
from cmt_geo.errors import ConfigError
from cmt_geo.training.config import LossSection
from cmt_geo.training.losses import (
    MAX_CLASS_WEIGHT,
    SegmentationLoss,
    balanced_class_weights,
    cross_entropy,
    dice_loss,
    focal_loss,
)

LN3 = math.log(3)


def pixels(*probabilities: tuple[float, float], targets: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, 2, 1, N) logits whose softmax is each given (p0, p1), and (1, 1, N) targets."""
    logits = torch.tensor([[math.log(p0), math.log(p1)] for p0, p1 in probabilities]).T
    return logits.reshape(1, 2, 1, -1), torch.tensor(targets).reshape(1, 1, -1)


def test_cross_entropy_by_hand() -> None:
    logits, target = pixels((0.25, 0.75), (0.25, 0.75), targets=(1, 0))
    assert cross_entropy(logits, target).item() == pytest.approx((-math.log(0.75) - math.log(0.25)) / 2)
    weighted = cross_entropy(logits, target, weight=torch.tensor([2.0, 1.0]))
    assert weighted.item() == pytest.approx((2 * math.log(4) + math.log(4 / 3)) / 3, rel=1e-6)
    one, target_one = pixels((0.25, 0.75), targets=(1,))
    smoothed = cross_entropy(one, target_one, label_smoothing=0.1)
    assert smoothed.item() == pytest.approx(0.9 * math.log(4 / 3) + 0.1 * (math.log(4) + math.log(4 / 3)) / 2)


def test_dice_by_hand_counts_only_classes_present() -> None:
    logits, target = pixels((0.25, 0.75), (0.5, 0.5), targets=(1, 0))
    # class 0: 2 * 0.5 / (0.75 + 1); class 1: 2 * 0.75 / (1.25 + 1)
    expected = 1 - (1 / 1.75 + 1.5 / 2.25) / 2
    assert dice_loss(logits, target, smooth=0).item() == pytest.approx(expected)
    _, only_one = pixels((0.25, 0.75), (0.5, 0.5), targets=(1, 1))
    assert dice_loss(logits, only_one, smooth=0).item() == pytest.approx(1 - 2 * 1.25 / (1.25 + 2))
    weighted = dice_loss(logits, target, weight=torch.tensor([3.0, 1.0]), smooth=0)
    assert weighted.item() == pytest.approx(1 - (3 / 1.75 + 1.5 / 2.25) / 4)
    assert dice_loss(logits, target, smooth=1).item() == pytest.approx(1 - (2 / 2.75 + 2.5 / 3.25) / 2)


def test_focal_by_hand() -> None:
    logits, target = pixels((0.25, 0.75), (0.5, 0.5), targets=(1, 0))
    a, b = 0.25**2 * math.log(4 / 3), 0.5**2 * math.log(2)
    assert focal_loss(logits, target, gamma=2).item() == pytest.approx((a + b) / 2)
    assert focal_loss(logits, target, weight=torch.tensor([2.0, 1.0]), gamma=2).item() == pytest.approx((a + 2 * b) / 2)
    assert focal_loss(logits, target, gamma=0).item() == pytest.approx(cross_entropy(logits, target).item())
    one, target_one = pixels((0.25, 0.75), targets=(1,))
    smoothed = 0.1 * 0.75**2 * math.log(4) + 0.9 * 0.25**2 * math.log(4 / 3)  # q = (0.1, 0.9)
    assert focal_loss(one, target_one, gamma=2, label_smoothing=0.2).item() == pytest.approx(smoothed)


@pytest.mark.parametrize("loss", [cross_entropy, dice_loss, focal_loss])
def test_ignored_pixels_change_nothing_and_get_no_gradient(loss: object) -> None:
    logits, target = pixels((0.25, 0.75), (0.5, 0.5), targets=(1, 0))
    more = torch.cat([logits, torch.tensor([[[[5.0]], [[-5.0]]]])], dim=-1).requires_grad_()
    ignored = torch.cat([target, torch.tensor([[[IGNORE_INDEX]]])], dim=-1)
    value = loss(more, ignored)  # type: ignore[operator]
    assert value.item() == pytest.approx(loss(logits, target).item())  # type: ignore[operator]
    value.backward()
    assert more.grad is not None
    assert torch.all(more.grad[..., -1] == 0)


def test_nothing_counted_is_zero_not_nan() -> None:
    logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    target = torch.full((1, 2, 2), IGNORE_INDEX)
    for loss in (dice_loss, focal_loss):
        assert loss(logits, target).item() == 0


def test_segmentation_loss_combines_as_the_section_says() -> None:
    logits, target = pixels((0.25, 0.75), (0.5, 0.5), targets=(1, 0))
    both = SegmentationLoss(LossSection(name="ce_dice", ce_weight=2.0, dice_weight=0.5, dice_smooth=0))
    expected = 2 * cross_entropy(logits, target) + 0.5 * dice_loss(logits, target, smooth=0)
    assert both(logits, target).item() == pytest.approx(expected.item())
    focal = SegmentationLoss(LossSection(name="focal", focal_gamma=2), class_weights=[2.0, 1.0])
    assert focal(logits, target).item() == pytest.approx(focal_loss(logits, target, torch.tensor([2.0, 1.0])).item())
    with pytest.raises(ConfigError, match="3 values for 2 classes"):
        SegmentationLoss(LossSection(), class_weights=[1.0, 1.0, 1.0])(logits, target)


def test_balanced_class_weights_average_one_per_pixel_and_favour_rare_classes() -> None:
    assert balanced_class_weights([900, 100]) == pytest.approx((5 / 6, 2.5))
    weights = balanced_class_weights([10**7, 1, 0])
    assert weights[1] == MAX_CLASS_WEIGHT
    assert weights[2] == 1.0
    with pytest.raises(ConfigError, match="no labelled pixels"):
        balanced_class_weights([0, 0])
