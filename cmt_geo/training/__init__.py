"""Training: a typed config, a Lightning module and data module, and `train`, which writes predict-ready checkpoints.

>>> from cmt_geo.training import load_config, train
>>> result = train(load_config("configs/synthetic.yaml", ["trainer.max_steps=50"]), "runs/synthetic")

Names are imported on first use, so `import cmt_geo.training` loads neither torch nor Lightning.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cmt_geo.training.config import TrainConfig, load_config
    from cmt_geo.training.datasets import build_dataset
    from cmt_geo.training.train import TrainResult, train

_SOURCES = {
    "cmt_geo.training.config": ("TrainConfig", "load_config"),
    "cmt_geo.training.datasets": ("build_dataset",),
    "cmt_geo.training.train": ("TrainResult", "train"),
}
_MODULE_OF = {name: module for module, names in _SOURCES.items() for name in names}

__all__ = ["TrainConfig", "TrainResult", "build_dataset", "load_config", "train"]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'cmt_geo.training' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
