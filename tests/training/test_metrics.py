"""The validation confusion accumulator: torch counts equal the evaluation metrics' confusion matrix."""

from __future__ import annotations

import numpy as np
import torch

from cmt_geo.card import IGNORE_INDEX
from cmt_geo.evaluation.metrics import confusion_matrix
from cmt_geo.training.metrics import ConfusionAccumulator


def test_counts_batches_and_matches_the_evaluation_confusion_matrix() -> None:
    generator = torch.Generator().manual_seed(0)
    pred = torch.randint(0, 4, (3, 5, 6), generator=generator)
    target = torch.randint(0, 4, (3, 5, 6), generator=generator)
    target[0, 0, :3] = IGNORE_INDEX
    accumulator = ConfusionAccumulator(4)
    accumulator.update(pred[:2], target[:2])
    accumulator.update(pred[2:], target[2:])
    expected = confusion_matrix(pred.numpy(), target.numpy(), 4)
    np.testing.assert_array_equal(accumulator.compute(), expected)
    assert accumulator.compute().sum() == 3 * 30 - 3


def test_keep_leaves_out_repeated_samples_and_reset_forgets() -> None:
    pred = torch.tensor([[[0, 1]], [[1, 1]]])
    target = torch.tensor([[[0, 0]], [[1, 1]]])
    accumulator = ConfusionAccumulator(2)
    accumulator.update(pred, target, keep=torch.tensor([True, False]))
    np.testing.assert_array_equal(accumulator.compute(), [[1, 1], [0, 0]])
    accumulator.reset()
    assert not accumulator.compute().any()
