"""Class rasters to class polygons: block-wise polygonization, exact merging across blocks, topology-safe
simplification, small-polygon merging, metric attributes, and GeoPackage / Shapefile / GeoJSON / GeoParquet output.

Torch-free: importing this package loads no torch, torchgeo or model.

    >>> from cmt_geo.vector import vectorize
    >>> vectorize("classes.tif", "classes.gpkg", min_area=4.0)  # doctest: +SKIP
"""

from cmt_geo.vector.polygons import AUTO_SIMPLIFY_PIXELS, polygonize, vectorize
from cmt_geo.vector.writers import VECTOR_DRIVERS, write_vector

__all__ = ["AUTO_SIMPLIFY_PIXELS", "VECTOR_DRIVERS", "polygonize", "vectorize", "write_vector"]
