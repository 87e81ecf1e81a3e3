"""Segmentation losses on (B, K, H, W) logits and (B, H, W) class indices; pixels labelled `ignore_index` never count.

`cross_entropy`, `dice_loss` and `focal_loss` are plain functions (each checked against hand-computed values in the
tests); `SegmentationLoss` combines them as a `LossSection` says, with class weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cmt_geo.card import IGNORE_INDEX
from cmt_geo.errors import ConfigError
from cmt_geo.training.config import LossSection

#: Largest weight `balanced_class_weights` gives a rare class (relative to a pixel-average weight of 1).
MAX_CLASS_WEIGHT = 10.0


def cross_entropy(
    logits: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    label_smoothing: float = 0.0,
    ignore_index: int = IGNORE_INDEX,
) -> Tensor:
    """Mean cross-entropy over the counted pixels (weighted by their true class's weight, as torch defines it)."""
    return F.cross_entropy(
        logits.float(), target, weight=weight, ignore_index=ignore_index, label_smoothing=label_smoothing
    )


def _valid_one_hot(logits: Tensor, target: Tensor, ignore_index: int) -> tuple[Tensor, Tensor]:
    """(B, H, W) bool of counted pixels, and the (B, K, H, W) one-hot target (zero at ignored pixels)."""
    valid = target != ignore_index
    safe = torch.where(valid, target, 0)
    one_hot = F.one_hot(safe, logits.shape[1]).permute(0, 3, 1, 2).to(logits.dtype)
    return valid, one_hot * valid.unsqueeze(1)


def dice_loss(
    logits: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    smooth: float = 0.05,
    ignore_index: int = IGNORE_INDEX,
) -> Tensor:
    """1 − soft Dice, per class over the whole batch, averaged over the classes present in the target.

    Per class c: dice_c = (2 Σ p_c t_c + smooth) / (Σ p_c + Σ t_c + smooth) over the counted pixels, with p the
    softmax probabilities and t the one-hot target. Classes absent from the target are left out of the mean (a
    batch without a class can neither reward nor punish it); `weight` weights the mean. 0 when nothing is counted.
    """
    logits = logits.float()
    valid, one_hot = _valid_one_hot(logits, target, ignore_index)
    probabilities = logits.softmax(dim=1) * valid.unsqueeze(1)
    dims = (0, 2, 3)
    intersection = (probabilities * one_hot).sum(dims)
    cardinality = probabilities.sum(dims) + one_hot.sum(dims)
    dice = (2 * intersection + smooth) / (cardinality + smooth)
    counted = (one_hot.sum(dims) > 0).to(dice.dtype)
    if weight is not None:
        counted = counted * weight
    return ((1 - dice) * counted).sum() / counted.sum().clamp_min(1e-12)


def focal_loss(
    logits: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    gamma: float = 2.0,
    label_smoothing: float = 0.0,
    ignore_index: int = IGNORE_INDEX,
) -> Tensor:
    """Per-pixel focal loss, averaged over the counted pixels.

    Each pixel contributes −w_y Σ_c q_c (1 − p_c)^gamma log p_c, with p the softmax probabilities, q the target
    (one-hot, or smoothed to (1 − ε) one-hot + ε / K) and w_y its true class's weight; gamma = 0 without smoothing
    is cross-entropy. 0 when nothing is counted.
    """
    logits = logits.float()
    valid, one_hot = _valid_one_hot(logits, target, ignore_index)
    if label_smoothing:
        one_hot = (one_hot * (1 - label_smoothing) + label_smoothing / logits.shape[1]) * valid.unsqueeze(1)
    log_p = logits.log_softmax(dim=1)
    per_pixel = -(one_hot * (1 - log_p.exp()).pow(gamma) * log_p).sum(dim=1)
    if weight is not None:
        per_pixel = per_pixel * weight[torch.where(valid, target, 0)]
    return per_pixel.sum() / valid.sum().clamp_min(1)


def balanced_class_weights(pixels: Sequence[int] | npt.NDArray[np.int64]) -> tuple[float, ...]:
    """Class weights from class pixel counts: 1 / sqrt(share), scaled so the average pixel weighs 1, capped at
    `MAX_CLASS_WEIGHT`; a class without pixels gets 1.

    Raises:
        ConfigError: no class has any pixel.
    """
    counts = np.asarray(pixels, dtype=np.float64)
    if counts.sum() <= 0:
        raise ConfigError("no labelled pixels to weight classes by; check the labels or give loss.class_weights")
    share = counts / counts.sum()
    present = share > 0
    weights = np.ones_like(share)
    weights[present] = 1 / np.sqrt(share[present])
    weights[present] /= (weights[present] * share[present]).sum()
    return tuple(float(w) for w in np.minimum(weights, MAX_CLASS_WEIGHT))


class SegmentationLoss(nn.Module):
    """The loss a `LossSection` describes.

    Args:
        config: the loss section.
        class_weights: one weight per class, or None.
        ignore_index: label value that never counts.
    """

    def __init__(
        self, config: LossSection, class_weights: Sequence[float] | None = None, ignore_index: int = IGNORE_INDEX
    ) -> None:
        super().__init__()
        self.config = config
        self.ignore_index = ignore_index
        self.weight: Tensor | None
        self.register_buffer("weight", None if class_weights is None else torch.tensor(class_weights))

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """(B, K, H, W) logits and (B, H, W) int64 targets -> the scalar loss."""
        c, weight, ignore = self.config, self.weight, self.ignore_index
        if weight is not None and weight.numel() != logits.shape[1]:
            raise ConfigError(
                f"loss.class_weights has {weight.numel()} values for {logits.shape[1]} classes; give one per class"
            )
        if c.name == "ce":
            return cross_entropy(logits, target, weight, c.label_smoothing, ignore)
        if c.name == "dice":
            return dice_loss(logits, target, weight, c.dice_smooth, ignore)
        if c.name == "focal":
            return focal_loss(logits, target, weight, c.focal_gamma, c.label_smoothing, ignore)
        return c.ce_weight * cross_entropy(logits, target, weight, c.label_smoothing, ignore) + (
            c.dice_weight * dice_loss(logits, target, weight, c.dice_smooth, ignore)
        )
