"""cmt-geo: CMT-UNet semantic segmentation for aerial, UAV and satellite rasters.

Importing this package is cheap: heavy dependencies (torchgeo, lightning, mamba-ssm, triton, click, qgis) are
imported only by the modules that need them, when they are used.
"""

import importlib
import logging
from typing import TYPE_CHECKING, Any

from cmt_geo._version import __version__
from cmt_geo.errors import CmtGeoError

if TYPE_CHECKING:
    from cmt_geo.inference import PredictOptions, predict_array, predict_raster
    from cmt_geo.vector import vectorize

logging.getLogger(__name__).addHandler(logging.NullHandler())

#: The workflows, imported on first use: `cmt_geo.predict_raster(...)` loads torch only then.
_LAZY = {
    "PredictOptions": "cmt_geo.inference",
    "predict_array": "cmt_geo.inference",
    "predict_raster": "cmt_geo.inference",
    "vectorize": "cmt_geo.vector",
}

__all__ = ["CmtGeoError", "PredictOptions", "__version__", "predict_array", "predict_raster", "vectorize"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'cmt_geo' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
