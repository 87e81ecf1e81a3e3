"""Validation confusion matrix accumulated on the device, batch by batch, and summed over DDP ranks."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from cmt_geo.card import IGNORE_INDEX


class ConfusionAccumulator:
    """Pixel counts by (true class, predicted class), kept as a tensor where the predictions are.

    Counting stays on the device (one `bincount` per batch, no copy to the host); `compute` sums the counts of
    every rank when torch.distributed is initialized, then scores them with `cmt_geo.evaluation.metrics.scores`.

    Args:
        num_classes: number of classes.
        ignore_index: truth value that is never counted.
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX) -> None:
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.counts: Tensor | None = None

    def reset(self) -> None:
        """Forget every count."""
        self.counts = None

    def update(self, pred: Tensor, target: Tensor, keep: Tensor | None = None) -> None:
        """Count (B, H, W) predicted and true class indices; `keep` (B,) leaves out whole samples when False."""
        k = self.num_classes
        counted = (target != self.ignore_index) & (target >= 0) & (target < k)
        if keep is not None:
            counted &= keep.view(-1, *([1] * (target.ndim - 1)))
        index = target[counted].long() * k + pred[counted].long()
        counts = torch.bincount(index, minlength=k * k).view(k, k)
        self.counts = counts if self.counts is None else self.counts + counts

    def compute(self, device: torch.device | None = None) -> npt.NDArray[np.int64]:
        """(K, K) int64 counts over all ranks (rows the truth, columns the prediction); every rank must call it."""
        k = self.num_classes
        counts = self.counts if self.counts is not None else torch.zeros(k, k, dtype=torch.int64, device=device)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            counts = counts.clone()
            torch.distributed.all_reduce(counts)
        return counts.cpu().numpy().astype(np.int64)
