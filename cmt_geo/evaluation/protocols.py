"""The benchmark protocol of each dataset: which classes mIoU and mean F1 average, and which labels are scored.

The table below, keyed by the registry's dataset names, is the one place these rules are written; the classes a
protocol leaves out are the dataset class's `scored_classes` (ISPRS: clutter).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cmt_geo.data.registry import DATASET_NAMES, dataset_class
from cmt_geo.errors import ConfigError


@dataclass(frozen=True)
class EvaluationProtocol:
    """How the field scores one dataset.

    Args:
        dataset: the registry name.
        test_labels: which labels the test split is scored on, in words.
        mean_over: class indices mIoU and mean F1 average; None for every class. OA always counts every class.
    """

    dataset: str
    test_labels: str
    mean_over: tuple[int, ...] | None

    def describe(self, class_names: Sequence[str]) -> str:
        """One line, e.g. "mIoU and mean F1 over 5 of 6 classes (without clutter), OA over all 6, on eroded labels"."""
        total = len(class_names)
        if self.mean_over is None or len(self.mean_over) == total:
            over = f"all {total} classes"
        else:
            left_out = [name for index, name in enumerate(class_names) if index not in self.mean_over]
            over = f"{len(self.mean_over)} of {total} classes (without {', '.join(left_out)})"
        return f"mIoU and mean F1 over {over}, OA over all {total}, on {self.test_labels}"


#: What the test split of each name in DATASET_NAMES is scored on (DESIGN.md: datasets and benchmark protocols).
_TEST_LABELS: dict[str, str] = {
    "vaihingen": "eroded labels (boundaries ignored)",
    "potsdam": "eroded labels (boundaries ignored)",
    "uavid": "full labels",
    "loveda": "full labels (no-data ignored)",
    "raster": "the given labels",
}


def protocol(dataset: str) -> EvaluationProtocol:
    """The evaluation protocol of a registered dataset name (see `cmt_geo.data.registry.DATASET_NAMES`).

    Raises:
        ConfigError: an unknown dataset name (the message lists the known ones).
    """
    if dataset not in _TEST_LABELS:
        raise ConfigError(f"unknown dataset {dataset!r}; use one of {', '.join(DATASET_NAMES)}")
    scored = dataset_class(dataset).scored_classes
    return EvaluationProtocol(
        dataset=dataset,
        test_labels=_TEST_LABELS[dataset],
        mean_over=None if scored is None else tuple(scored),
    )
