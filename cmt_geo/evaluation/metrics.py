"""Confusion matrices and the segmentation scores computed from them (IoU, F1, precision, recall, OA).

Classes absent from both the truth and the prediction have no defined score: their IoU, F1, precision and recall
are NaN, and they are left out of mIoU and mean F1 (a class that never occurs can neither raise nor lower the mean).
A class that occurs only in the prediction scores IoU 0 and F1 0 (recall is NaN: there is nothing to recall); a
class that occurs only in the truth scores IoU 0, F1 0 and recall 0 (precision is NaN). OA always counts every class.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from cmt_geo.card import IGNORE_INDEX
from cmt_geo.errors import ConfigError

if TYPE_CHECKING:
    import torch

    ArrayLike = npt.NDArray[np.integer[Any]] | torch.Tensor


def confusion_matrix(
    pred: ArrayLike, target: ArrayLike, num_classes: int, ignore_index: int | None = IGNORE_INDEX
) -> npt.NDArray[np.int64]:
    """Count pixels by (true class, predicted class).

    Pixels whose truth is `ignore_index` or outside 0..num_classes-1 are not counted. Torch tensors are counted on
    their own device (a GPU stays a GPU until the small result is copied back).

    Args:
        pred: predicted class indices, any shape (numpy array or torch tensor).
        target: true class indices, the same shape.
        num_classes: number of classes.
        ignore_index: truth value that is never counted (None: only out-of-range truth is skipped).

    Returns:
        (num_classes, num_classes) int64 counts; rows are the truth, columns the prediction.

    Raises:
        ConfigError: shapes differ, `num_classes` is not positive, or a counted pixel's prediction is outside
            0..num_classes-1.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes={num_classes!r} must be a positive integer")
    if tuple(pred.shape) != tuple(target.shape):
        raise ConfigError(
            f"prediction shape {tuple(pred.shape)} differs from truth shape {tuple(target.shape)}; "
            "pass class-index maps of one shape (argmax the logits first)"
        )
    if isinstance(pred, np.ndarray) and isinstance(target, np.ndarray):
        return _confusion_numpy(pred, target, num_classes, ignore_index)
    return _confusion_torch(pred, target, num_classes, ignore_index)


def _out_of_range_prediction(count: int, num_classes: int) -> ConfigError:
    return ConfigError(
        f"{count} counted pixels are predicted as classes outside 0..{num_classes - 1}; "
        "pass the model's class indices (argmax over its num_classes outputs)"
    )


def _confusion_numpy(
    pred: npt.NDArray[Any], target: npt.NDArray[Any], num_classes: int, ignore_index: int | None
) -> npt.NDArray[np.int64]:
    truth = target.reshape(-1).astype(np.int64, copy=False)
    guess = pred.reshape(-1).astype(np.int64, copy=False)
    keep = (truth >= 0) & (truth < num_classes)
    if ignore_index is not None:
        keep &= truth != ignore_index
    truth, guess = truth[keep], guess[keep]
    bad = int(np.count_nonzero((guess < 0) | (guess >= num_classes)))
    if bad:
        raise _out_of_range_prediction(bad, num_classes)
    counts = np.bincount(truth * num_classes + guess, minlength=num_classes * num_classes)
    return counts.astype(np.int64).reshape(num_classes, num_classes)


def _confusion_torch(pred: Any, target: Any, num_classes: int, ignore_index: int | None) -> npt.NDArray[np.int64]:
    import torch

    pred_t = torch.as_tensor(pred)
    target_t = torch.as_tensor(target, device=pred_t.device)
    truth = target_t.reshape(-1).long()
    guess = pred_t.reshape(-1).long()
    keep = (truth >= 0) & (truth < num_classes)
    if ignore_index is not None:
        keep &= truth != ignore_index
    truth, guess = truth[keep], guess[keep]
    bad = int(((guess < 0) | (guess >= num_classes)).sum())
    if bad:
        raise _out_of_range_prediction(bad, num_classes)
    counts = torch.bincount(truth * num_classes + guess, minlength=num_classes * num_classes)
    return counts.cpu().numpy().astype(np.int64).reshape(num_classes, num_classes)


@dataclass(frozen=True)
class SegmentationScores:
    """Scores of one confusion matrix (see the module docstring for how absent classes count).

    Args:
        iou: per-class intersection over union, tp / (tp + fp + fn).
        f1: per-class F1, 2 tp / (2 tp + fp + fn).
        precision: per-class tp / (tp + fp).
        recall: per-class tp / (tp + fn).
        support: per-class number of true pixels.
        miou: mean IoU over the `mean_over` classes that are not absent.
        mean_f1: mean F1 over the same classes.
        oa: overall accuracy, correct / counted pixels, over all classes.
        mean_over: class indices the means average (before leaving out absent ones).
        absent: classes absent from both truth and prediction (NaN scores, left out of the means).
    """

    iou: tuple[float, ...]
    f1: tuple[float, ...]
    precision: tuple[float, ...]
    recall: tuple[float, ...]
    support: tuple[int, ...]
    miou: float
    mean_f1: float
    oa: float
    mean_over: tuple[int, ...]
    absent: tuple[int, ...]

    @property
    def num_classes(self) -> int:
        """Number of classes scored."""
        return len(self.iou)

    def per_class(self, class_names: Sequence[str]) -> list[dict[str, Any]]:
        """One row per class: name, index, support, IoU, F1, precision, recall, and whether the means count it."""
        if len(class_names) != self.num_classes:
            raise ConfigError(
                f"{len(class_names)} class names for {self.num_classes} scored classes; give one name per class"
            )
        counted = set(self.mean_over) - set(self.absent)
        return [
            {
                "index": index,
                "name": name,
                "support": self.support[index],
                "iou": self.iou[index],
                "f1": self.f1[index],
                "precision": self.precision[index],
                "recall": self.recall[index],
                "in_mean": index in counted,
            }
            for index, name in enumerate(class_names)
        ]


def _ratio(numerator: npt.NDArray[np.float64], denominator: npt.NDArray[np.float64]) -> tuple[float, ...]:
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan)
    return tuple(float(v) for v in values)


def _mean(values: Sequence[float], indices: Sequence[int]) -> float:
    chosen = [values[i] for i in indices if not math.isnan(values[i])]
    return float(np.mean(chosen)) if chosen else math.nan


def scores(confusion: npt.ArrayLike, mean_over: Sequence[int] | None = None) -> SegmentationScores:
    """IoU, F1, precision and recall per class, their means over `mean_over`, and overall accuracy.

    Args:
        confusion: (K, K) counts, rows the truth and columns the prediction (as `confusion_matrix` returns).
        mean_over: class indices mIoU and mean F1 average (all when None), e.g. the ISPRS protocol's five classes
            without clutter; classes absent from truth and prediction are left out of the means.

    Returns:
        The scores; a mean or OA with nothing to average is NaN.

    Raises:
        ConfigError: the matrix is not square, has negative counts, or `mean_over` names a class outside it.
    """
    matrix = np.asarray(confusion)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ConfigError(f"confusion matrix of shape {matrix.shape} must be square (classes x classes)")
    if np.any(matrix < 0):
        raise ConfigError("confusion matrix has negative counts; pass pixel counts (cmt_geo.evaluation.metrics)")
    k = matrix.shape[0]
    over = tuple(range(k)) if mean_over is None else tuple(int(i) for i in mean_over)
    if not over or any(not 0 <= i < k for i in over) or len(set(over)) != len(over):
        raise ConfigError(f"mean_over={list(over)} must list distinct class indices in 0..{k - 1}")
    counts = matrix.astype(np.float64)
    tp = np.diag(counts)
    truth = counts.sum(axis=1)
    predicted = counts.sum(axis=0)
    fp, fn = predicted - tp, truth - tp
    iou = _ratio(tp, tp + fp + fn)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    total = counts.sum()
    return SegmentationScores(
        iou=iou,
        f1=f1,
        precision=_ratio(tp, predicted),
        recall=_ratio(tp, truth),
        support=tuple(int(v) for v in matrix.sum(axis=1)),
        miou=_mean(iou, over),
        mean_f1=_mean(f1, over),
        oa=float(tp.sum() / total) if total > 0 else math.nan,
        mean_over=over,
        absent=tuple(int(i) for i in np.flatnonzero((truth + predicted) == 0)),
    )
