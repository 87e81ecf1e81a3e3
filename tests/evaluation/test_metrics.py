"""Confusion matrices and scores against hand-computed values, ignore labels and the ISPRS 5-of-6 averaging."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cmt_geo.card import IGNORE_INDEX
from cmt_geo.errors import ConfigError
from cmt_geo.evaluation.metrics import confusion_matrix, scores

TRUTH = np.array([[0, 0, 1, 1], [2, 2, 2, IGNORE_INDEX]])
PRED = np.array([[0, 1, 1, 1], [2, 0, 2, 1]])
# rows truth, cols prediction; the ignored pixel (truth 255, pred 1) is not counted
EXPECTED = np.array([[1, 1, 0], [0, 2, 0], [1, 0, 2]])


def test_confusion_matrix_by_hand_skips_ignored_truth() -> None:
    matrix = confusion_matrix(PRED, TRUTH, 3)
    assert matrix.dtype == np.int64
    np.testing.assert_array_equal(matrix, EXPECTED)


def test_confusion_matrix_of_torch_tensors_equals_numpy() -> None:
    matrix = confusion_matrix(torch.from_numpy(PRED), torch.from_numpy(TRUTH).to(torch.uint8), 3)
    np.testing.assert_array_equal(matrix, EXPECTED)


def test_out_of_range_truth_is_skipped_and_ignore_index_none_still_skips_it() -> None:
    truth = np.array([0, 1, 3, 7, -1])
    pred = np.array([0, 1, 0, 0, 0])
    np.testing.assert_array_equal(confusion_matrix(pred, truth, 2, ignore_index=None), [[1, 0], [0, 1]])


def test_custom_ignore_index_is_skipped() -> None:
    truth = np.array([0, 1, 1])
    pred = np.array([1, 1, 0])
    np.testing.assert_array_equal(confusion_matrix(pred, truth, 2, ignore_index=0), [[0, 0], [1, 1]])


def test_prediction_outside_the_classes_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"outside 0\.\.2"):
        confusion_matrix(np.array([0, 5]), np.array([0, 1]), 3)
    with pytest.raises(ConfigError, match=r"outside 0\.\.2"):
        confusion_matrix(torch.tensor([0, 5]), torch.tensor([0, 1]), 3)


def test_a_wrong_prediction_on_an_ignored_pixel_is_fine() -> None:
    np.testing.assert_array_equal(confusion_matrix(np.array([0, 9]), np.array([0, IGNORE_INDEX]), 1), [[1]])


def test_shape_mismatch_and_bad_num_classes_are_errors() -> None:
    with pytest.raises(ConfigError, match="shape"):
        confusion_matrix(np.zeros((2, 2), int), np.zeros((2, 3), int), 2)
    with pytest.raises(ConfigError, match="num_classes"):
        confusion_matrix(np.zeros(2, int), np.zeros(2, int), 0)


def test_scores_by_hand() -> None:
    result = scores(EXPECTED)
    # class 0: tp 1, fp 1 (truth 2 -> 0), fn 1 (0 -> 1); class 1: tp 2, fp 1, fn 0; class 2: tp 2, fp 0, fn 1
    assert result.iou == pytest.approx((1 / 3, 2 / 3, 2 / 3))
    assert result.f1 == pytest.approx((2 / 4, 4 / 5, 4 / 5))
    assert result.precision == pytest.approx((1 / 2, 2 / 3, 1.0))
    assert result.recall == pytest.approx((1 / 2, 1.0, 2 / 3))
    assert result.support == (2, 2, 3)
    assert result.miou == pytest.approx((1 / 3 + 2 / 3 + 2 / 3) / 3)
    assert result.mean_f1 == pytest.approx((0.5 + 0.8 + 0.8) / 3)
    assert result.oa == pytest.approx(5 / 7)
    assert result.absent == ()


def test_isprs_averages_five_of_six_classes_and_oa_counts_all_six() -> None:
    # six classes, clutter (5) is badly predicted: it must drag OA down but not mIoU / mean F1
    matrix = np.diag([10, 10, 10, 10, 10, 0]).astype(np.int64)
    matrix[5, 0] = 10  # 10 clutter pixels predicted as impervious surface
    result = scores(matrix, mean_over=(0, 1, 2, 3, 4))
    # class 0: tp 10, fp 10 -> IoU 0.5, F1 2*10/(20+10) = 2/3; classes 1..4 perfect
    assert result.iou[:5] == pytest.approx((0.5, 1, 1, 1, 1))
    assert result.iou[5] == 0.0
    assert result.miou == pytest.approx((0.5 + 4) / 5)
    assert result.mean_f1 == pytest.approx((2 / 3 + 4) / 5)
    assert result.oa == pytest.approx(50 / 60)
    assert scores(matrix).miou == pytest.approx((0.5 + 4) / 6)  # all six, for comparison


def test_class_absent_from_truth_and_prediction_is_nan_and_left_out_of_the_means() -> None:
    matrix = np.array([[3, 1, 0], [0, 4, 0], [0, 0, 0]])
    result = scores(matrix)
    assert result.absent == (2,)
    assert all(math.isnan(v[2]) for v in (result.iou, result.f1, result.precision, result.recall))
    assert result.miou == pytest.approx((3 / 4 + 4 / 5) / 2)


def test_class_only_predicted_scores_zero_iou_and_nan_recall() -> None:
    matrix = np.array([[3, 1], [0, 0]])
    result = scores(matrix)
    assert result.iou == pytest.approx((0.75, 0.0))
    assert result.f1[1] == 0.0
    assert result.precision[1] == 0.0
    assert math.isnan(result.recall[1])
    assert result.miou == pytest.approx(0.375)
    assert result.absent == ()


def test_class_only_in_truth_scores_zero_recall_and_nan_precision() -> None:
    result = scores(np.array([[3, 0], [2, 0]]))
    assert result.iou[1] == 0.0
    assert result.recall[1] == 0.0
    assert math.isnan(result.precision[1])


def test_empty_matrix_scores_nan() -> None:
    result = scores(np.zeros((2, 2), np.int64))
    assert math.isnan(result.miou)
    assert math.isnan(result.oa)
    assert result.absent == (0, 1)


@pytest.mark.parametrize(
    ("matrix", "mean_over", "match"),
    [
        (np.zeros((2, 3)), None, "square"),
        (np.array([[1, -1], [0, 1]]), None, "negative"),
        (np.eye(2), (0, 2), "mean_over"),
        (np.eye(2), (), "mean_over"),
        (np.eye(2), (1, 1), "mean_over"),
    ],
)
def test_bad_inputs_to_scores(matrix: np.ndarray, mean_over: tuple[int, ...] | None, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        scores(matrix, mean_over=mean_over)


def test_per_class_rows_name_each_class_and_mark_the_mean() -> None:
    rows = scores(np.eye(3, dtype=np.int64), mean_over=(0, 1)).per_class(("a", "b", "c"))
    assert [row["name"] for row in rows] == ["a", "b", "c"]
    assert [row["in_mean"] for row in rows] == [True, True, False]
    with pytest.raises(ConfigError, match="class names"):
        scores(np.eye(3, dtype=np.int64)).per_class(("a",))
