"""Tiled, streaming prediction of rasters of any size into classified Cloud-Optimized GeoTIFFs.

>>> from cmt_geo.inference import PredictOptions, predict_raster
>>> predict_raster("ortho.tif", "classes.tif", "model.ckpt", options=PredictOptions(tta="flip"))
"""

from cmt_geo.inference.arrays import predict_array
from cmt_geo.inference.engine import PredictOutputs, predict_raster
from cmt_geo.inference.options import PredictOptions

__all__ = ["PredictOptions", "PredictOutputs", "predict_array", "predict_raster"]
