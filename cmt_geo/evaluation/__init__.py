"""Scoring segmentation models: confusion matrices, per-class scores, each dataset's protocol, whole-tile evaluation.

Importing it loads numpy only; torch, TorchGeo and the inference engine load when `evaluate` runs.
"""

from cmt_geo.evaluation.evaluate import EvaluationResult, PredictionSettings, TileScore, evaluate
from cmt_geo.evaluation.metrics import SegmentationScores, confusion_matrix, scores
from cmt_geo.evaluation.protocols import EvaluationProtocol, protocol

__all__ = [
    "EvaluationProtocol",
    "EvaluationResult",
    "PredictionSettings",
    "SegmentationScores",
    "TileScore",
    "confusion_matrix",
    "evaluate",
    "protocol",
    "scores",
]
