"""Pixel-edge coverage operations: grouping, exact unions, small-polygon merging and noding."""

from __future__ import annotations

import numpy as np
import shapely
from affine import Affine
from rasterio.features import shapes

from cmt_geo.vector.coverage import connected_groups, merge_small_polygons, node_coverage, union_groups

from .conftest import class_scene


def _boxes(*corners: tuple[int, int, int, int]) -> np.ndarray:
    """Boxes as a noded coverage."""
    return node_coverage(np.array([shapely.box(*corner) for corner in corners], dtype=object))


def test_connected_groups_joins_pairs_transitively() -> None:
    groups = connected_groups(6, np.array([4, 1, 3]), np.array([2, 3, 5]))
    assert groups.tolist() == [0, 1, 2, 1, 2, 1]


def test_union_groups_merges_each_group_exactly() -> None:
    geometries = _boxes((0, 0, 2, 1), (5, 5, 6, 6), (2, 0, 3, 1), (3, 0, 4, 2))
    merged, labels = union_groups(geometries, np.array([0, 1, 0, 0]))
    assert labels.tolist() == [0, 1]
    assert merged[0].equals(shapely.Polygon([(0, 0), (4, 0), (4, 2), (3, 2), (3, 1), (0, 1)]))
    assert merged[1].equals(geometries[1])


def test_merge_small_polygons_follows_the_longest_shared_edge_and_drops_the_isolated() -> None:
    geometries = _boxes(
        (0, 0, 10, 10),  # 0: big, class 0
        (10, 0, 20, 10),  # 1: big, class 1
        (10, 10, 13, 12),  # 2: small, class 2: 3 px edge with 1, 0 px with 0 (corner), 1 px with 3
        (13, 10, 14, 11),  # 3: small, class 3: only touches small 2 (1 px) and big 1 (1 px): ties go to lower index 1
        (30, 30, 31, 31),  # 4: small and alone: dropped
    )
    class_ids = np.array([0, 1, 2, 3, 4], dtype=np.int32)
    merged, ids = merge_small_polygons(geometries, class_ids, shapely.area(geometries), 50.0)
    assert ids.tolist() == [0, 1]
    assert merged[1].area == 100 + 6 + 1
    assert shapely.coverage_is_valid(merged)


def test_small_neighbours_merge_into_the_class_of_the_largest_and_are_dropped_if_still_small() -> None:
    geometries = _boxes((0, 0, 4, 1), (4, 0, 11, 1))  # two small neighbours (areas 4 and 7), nothing else
    class_ids = np.array([7, 9], dtype=np.int32)
    merged, ids = merge_small_polygons(geometries, class_ids, shapely.area(geometries), 8.0)
    assert ids.tolist() == [9]
    assert merged[0].equals(shapely.box(0, 0, 11, 1))
    merged, ids = merge_small_polygons(geometries, class_ids, shapely.area(geometries), 12.0)
    assert len(merged) == len(ids) == 0


def _gdal_polygons(scene: np.ndarray) -> np.ndarray:
    return np.array(
        [shapely.geometry.shape(g) for g, _ in shapes(scene, connectivity=4, transform=Affine.identity())],
        dtype=object,
    )


def test_node_coverage_turns_gdal_output_into_a_valid_coverage_without_changing_shapes() -> None:
    polygons = _gdal_polygons(class_scene(40, 44))
    assert not shapely.coverage_is_valid(polygons)  # GDAL leaves T-junctions
    noded = node_coverage(polygons)
    assert shapely.coverage_is_valid(noded)
    assert shapely.equals(noded, polygons).all()
    assert (shapely.get_num_interior_rings(noded) == shapely.get_num_interior_rings(polygons)).all()
    chunked = node_coverage(polygons, chunk_vertices=7)
    assert all(a.equals_exact(b, 0) for a, b in zip(chunked, noded, strict=True))
