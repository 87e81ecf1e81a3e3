"""Exact operations on a pixel-edge polygon coverage: noding, grouping and union, small-polygon merging.

The polygons are in pixel coordinates (x = column, y = row), so every vertex is an integer and every edge is
axis-parallel. Once noded (neighbours share identical vertices) the coverage is united with GEOS's coverage union,
which only drops shared edges: exact, fast, and the result stays noded.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import shapely

Geometries = npt.NDArray[np.object_]


def connected_groups(count: int, first: npt.NDArray[Any], second: npt.NDArray[Any]) -> npt.NDArray[np.intp]:
    """The group of each of `count` items when the pairs (first[i], second[i]) are joined (union-find).

    Returns:
        (count,) the smallest item index of each item's group.
    """
    parent = list(range(count))

    def root(item: int) -> int:
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    for a, b in zip(first.tolist(), second.tolist(), strict=True):
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([root(item) for item in range(count)], dtype=np.intp)


def union_groups(geometries: Geometries, groups: npt.NDArray[np.intp]) -> tuple[Geometries, npt.NDArray[np.intp]]:
    """One polygon per group: the union of the group's polygons, whose remaining edges keep all their vertices.

    Args:
        geometries: (N,) a noded coverage (see `node_coverage`).
        groups: (N,) group of each polygon, as `connected_groups` returns.

    Returns:
        The merged polygons and, for each, its group (the smallest member index), in group order.
    """
    order = np.argsort(groups, kind="stable")
    labels, starts, sizes = np.unique(groups[order], return_index=True, return_counts=True)
    merged = geometries[labels].copy()
    for position in np.flatnonzero(sizes > 1):
        members = order[starts[position] : starts[position] + sizes[position]]
        merged[position] = shapely.coverage_union_all(geometries[members])
    return merged, labels


def merge_small_polygons(
    geometries: Geometries, class_ids: npt.NDArray[np.int32], areas: npt.NDArray[np.float64], min_area: float
) -> tuple[Geometries, npt.NDArray[np.int32]]:
    """Merge every polygon under `min_area` m² into the neighbour it shares the longest edge with.

    A merged polygon takes the class of its largest member. Rounds repeat until no small polygon has a neighbour;
    small polygons left without one (e.g. surrounded by no-data) are dropped.

    Args:
        geometries: (N,) a noded coverage (see `node_coverage`).
        class_ids: (N,) the class of each polygon.
        areas: (N,) the area of each polygon, m².
        min_area: the smallest area to keep, m².

    Returns:
        The polygons and their classes.
    """
    while True:
        small = np.flatnonzero(areas < min_area)
        if small.size == 0:
            return geometries, class_ids
        query, neighbour = shapely.STRtree(geometries).query(geometries[small], predicate="intersects")
        source = small[query]
        shared = shapely.length(shapely.intersection(shapely.boundary(geometries[source]), geometries[neighbour]))
        touching = (neighbour != source) & (shared > 0)
        source, neighbour, shared = source[touching], neighbour[touching], shared[touching]
        best = np.lexsort((neighbour, -shared, source))  # per source: longest shared edge, then lowest index
        source, neighbour = source[best], neighbour[best]
        firsts = np.unique(source, return_index=True)[1]
        keep = np.ones(len(geometries), dtype=bool)
        keep[small] = np.isin(small, source)  # small polygons without a neighbour are dropped
        groups = connected_groups(len(geometries), source[firsts], neighbour[firsts])[keep]
        geometries, class_ids, areas = geometries[keep], class_ids[keep], areas[keep]
        largest = np.lexsort((-areas, groups))
        representative = largest[np.unique(groups[largest], return_index=True)[1]]
        class_ids = class_ids[representative]
        areas = np.bincount(np.unique(groups, return_inverse=True)[1], weights=areas)
        geometries = union_groups(geometries, groups)[0]


def node_coverage(geometries: Geometries, chunk_vertices: int = 1 << 20) -> Geometries:
    """Insert into every edge the coverage vertices that lie inside it, so neighbours share identical vertices.

    GDAL's polygonizer leaves T-junctions (a vertex of one polygon in the middle of its neighbour's edge), which
    `shapely.coverage_simplify` treats as an invalid coverage. On pixel-edge polygons (integer vertices,
    axis-parallel edges) every vertex of the coverage that lies on an edge is inserted there, exactly.

    Args:
        geometries: (N,) polygons or multipolygons in pixel coordinates.
        chunk_vertices: polygons are rebuilt this many vertices at a time, bounding the memory used.

    Returns:
        (N,) the same polygons with the extra vertices.
    """
    if len(geometries) == 0:
        return geometries
    points = shapely.get_coordinates(geometries).astype(np.int64)
    span = int(points.max()) + 1
    horizontal = np.sort(points[:, 1] * span + points[:, 0])
    horizontal = horizontal[np.append(True, horizontal[1:] != horizontal[:-1])]  # faster than np.unique here
    del points
    row, col = np.divmod(horizontal, span)
    keys = np.concatenate([horizontal, np.sort(span * span + col * span + row)])
    del horizontal, row, col
    ends = np.cumsum(shapely.get_num_coordinates(geometries))
    splits = np.unique(np.searchsorted(ends, np.arange(chunk_vertices, ends[-1], chunk_vertices), side="right"))
    chunks = np.split(np.arange(len(geometries)), splits)
    return np.concatenate([_insert_vertices(geometries[chunk], keys, span) for chunk in chunks if chunk.size])


def _insert_vertices(geometries: Geometries, keys: npt.NDArray[np.int64], span: int) -> Geometries:
    """`node_coverage` for some of the polygons, given the sort keys of all the coverage's vertices.

    Args:
        geometries: polygons in pixel coordinates.
        keys: sorted unique keys of every vertex: y * span + x (horizontal lines), then
            span² + x * span + y (vertical lines).
        span: one more than the largest coordinate.
    """
    kind, coords, offsets = shapely.to_ragged_array(geometries)
    rings = offsets[0]
    points = coords.astype(np.int64)
    horizontal_key = points[:, 1] * span + points[:, 0]
    vertical_key = span * span + points[:, 0] * span + points[:, 1]
    horizontal = points[:-1, 1] == points[1:, 1]
    start = np.where(horizontal, horizontal_key[:-1], vertical_key[:-1])
    end = np.where(horizontal, horizontal_key[1:], vertical_key[1:])
    first = np.searchsorted(keys, np.minimum(start, end), side="right")
    last = np.searchsorted(keys, np.maximum(start, end), side="left")
    inserted = np.maximum(last - first, 0)
    inserted[rings[1:-1] - 1] = 0  # the step from one ring's last vertex to the next ring's first is no edge
    emitted = np.append(inserted, 0) + 1
    out_start = np.cumsum(emitted) - emitted
    out = np.empty((int(emitted.sum()), 2), dtype=np.int64)
    out[out_start] = points
    edge = np.repeat(np.arange(len(inserted)), inserted)
    step = np.arange(edge.size) - np.repeat(np.cumsum(inserted) - inserted, inserted)
    key = keys[np.where(end[edge] > start[edge], first[edge] + step, last[edge] - 1 - step)]
    is_vertical = key >= span * span
    major, minor = np.divmod(np.where(is_vertical, key - span * span, key), span)
    out[out_start[edge] + 1 + step] = np.column_stack(
        [np.where(is_vertical, major, minor), np.where(is_vertical, minor, major)]
    )
    new_rings = np.append(out_start[rings[:-1]], len(out))
    return shapely.from_ragged_array(kind, out.astype(np.float64), (new_rings, *offsets[1:]))
