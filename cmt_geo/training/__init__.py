"""Training: a typed config, a Lightning module and data module, and `train`, which writes predict-ready checkpoints.

>>> from cmt_geo.training import load_config, train
>>> result = train(load_config("configs/synthetic.yaml", ["trainer.max_steps=50"]), "runs/synthetic")

Names are imported on first use, so `import cmt_geo.training` loads neither torch nor Lightning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cmt_geo._lazy import lazy_exports

if TYPE_CHECKING:
    from cmt_geo.training.config import TrainConfig, load_config
    from cmt_geo.training.datasets import build_dataset
    from cmt_geo.training.train import TrainResult, train

_SOURCES = {
    "cmt_geo.training.config": ("TrainConfig", "load_config"),
    "cmt_geo.training.datasets": ("build_dataset",),
    "cmt_geo.training.train": ("TrainResult", "train"),
}

__all__ = ["TrainConfig", "TrainResult", "build_dataset", "load_config", "train"]


__getattr__, __dir__ = lazy_exports("cmt_geo.training", _SOURCES, globals())
