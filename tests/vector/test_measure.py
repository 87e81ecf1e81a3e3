"""Metric areas and perimeters through a local equal-area projection, checked against geodesic truth."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from pyproj import CRS, Geod, Transformer

from cmt_geo.errors import InvalidRasterError
from cmt_geo.vector.measure import area_perimeter_m, local_equal_area

GEOD = Geod(ellps="WGS84")


@pytest.mark.parametrize(("epsg", "latitude"), [(4326, 48.0), (32632, 48.0), (3857, 60.0), (4326, -70.0)])
def test_areas_and_perimeters_are_geodesic_metres_in_any_crs(epsg: int, latitude: float) -> None:
    to_crs = Transformer.from_crs(4326, epsg, always_xy=True)
    squares = shapely.segmentize(  # 100 m and 2 km squares, in lon/lat, densified so edges stay geodesic-like
        [shapely.box(9.0, latitude, 9.0 + size / 75_000, latitude + size / 111_000) for size in (100, 2_000)], 1e-4
    )
    truth_area = [abs(GEOD.geometry_area_perimeter(square)[0]) for square in squares]
    truth_perimeter = [GEOD.geometry_area_perimeter(square)[1] for square in squares]
    in_crs = shapely.transform(squares, lambda xy: np.column_stack(to_crs.transform(xy[:, 0], xy[:, 1])))
    bounds = shapely.total_bounds(in_crs)
    areas, perimeters = area_perimeter_m(in_crs, local_equal_area(CRS.from_epsg(epsg), tuple(bounds)))
    assert areas == pytest.approx(truth_area, rel=1e-4)
    assert perimeters == pytest.approx(truth_perimeter, rel=1e-4)
    if epsg == 3857:  # planar Web Mercator areas would be 4 times too large at 60° N
        assert shapely.area(in_crs) == pytest.approx(4 * np.array(truth_area), rel=0.02)


def test_a_crs_without_a_datum_is_refused() -> None:
    local = CRS.from_wkt(
        'ENGCRS["site grid",EDATUM["site"],CS[Cartesian,2],AXIS["x",east,LENGTHUNIT["metre",1]],'
        'AXIS["y",north,LENGTHUNIT["metre",1]]]'
    )
    with pytest.raises(InvalidRasterError, match=r"'site grid' has no datum.*gdal_edit\.py -a_srs"):
        local_equal_area(local, (0.0, 0.0, 10.0, 10.0))
