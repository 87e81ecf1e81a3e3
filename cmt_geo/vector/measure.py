"""Areas and perimeters in metres for polygons in any CRS, through a local equal-area projection."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import shapely
from pyproj import CRS, Transformer
from pyproj.crs import ProjectedCRS
from pyproj.crs.coordinate_operation import LambertAzimuthalEqualAreaConversion

from cmt_geo.errors import InvalidRasterError

Geometries = npt.NDArray[np.object_]


def local_equal_area(crs: CRS, bounds: tuple[float, float, float, float]) -> Transformer:
    """A transformer from `crs` to a Lambert azimuthal equal-area projection centred on `bounds`, on the CRS's datum.

    Areas there are exact for any source CRS (geographic, UTM, Web Mercator); lengths are off by at most 0.01 %
    within 180 km of the centre and 0.3 % at 1,000 km, so perimeters are metres for any raster a model segments.

    Args:
        crs: the polygons' CRS.
        bounds: (west, south, east, north) of the area measured, in `crs` units.

    Raises:
        InvalidRasterError: the CRS has no geodetic datum (an engineering or local CRS).
    """
    geodetic = crs.geodetic_crs
    if geodetic is None:
        raise InvalidRasterError(
            f"the CRS {crs.name!r} has no datum, so areas in m² are unknown; assign the raster a real CRS, "
            "e.g. gdal_edit.py -a_srs EPSG:32632 CLASSES.tif"
        )
    west, south, east, north = bounds
    longitude, latitude = Transformer.from_crs(crs, geodetic, always_xy=True).transform(
        (west + east) / 2, (south + north) / 2
    )
    conversion = LambertAzimuthalEqualAreaConversion(
        latitude_natural_origin=latitude, longitude_natural_origin=longitude
    )
    return Transformer.from_crs(crs, ProjectedCRS(conversion, geodetic_crs=geodetic), always_xy=True)


def area_perimeter_m(
    geometries: Geometries, to_metric: Transformer
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Area (m²) and perimeter (m, holes included) of each polygon.

    Args:
        geometries: (N,) polygons in the source CRS of `to_metric`.
        to_metric: a transformer to a metric equal-area projection, from `local_equal_area`.

    Returns:
        (N,) areas and (N,) perimeters.
    """
    projected = shapely.transform(geometries, lambda xy: np.column_stack(to_metric.transform(xy[:, 0], xy[:, 1])))
    return shapely.area(projected), shapely.length(projected)
