"""`polygonize` and `vectorize`: exact class coverage, seamless blocks, topology-safe simplification, small-polygon
merging, metric attributes, class names, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from pyproj import Geod
from rasterio.features import rasterize

from cmt_geo.errors import CanceledError, ConfigError, InvalidRasterError, OutputExistsError
from cmt_geo.progress import NullProgress
from cmt_geo.vector import polygonize, vectorize

from .conftest import GRIDS, WriteRaster, class_scene


def _sorted(frame):  # type: ignore[no-untyped-def]
    """Rows in a canonical order: class, then bounds, then area."""
    bounds = shapely.bounds(frame.geometry.values)
    order = np.lexsort((frame.area.values, *bounds.T[::-1], frame.class_id.values))
    return frame.iloc[order].reset_index(drop=True)


@pytest.mark.parametrize("grid", ["utm", "geographic"])
def test_polygons_are_valid_and_cover_exactly_the_class_pixels(write_raster: WriteRaster, grid: str) -> None:
    scene = class_scene()
    frame = polygonize(write_raster(scene, grid=grid), simplify=None, block_size=16)
    assert shapely.is_valid(frame.geometry.values).all()
    assert set(frame.geom_type) == {"Polygon"}
    transform = GRIDS[grid][1]
    burned = rasterize(
        zip(frame.geometry, frame.class_id + 1, strict=True), out_shape=scene.shape, transform=transform, fill=0
    )
    assert np.array_equal(burned, np.where(scene == 255, 0, scene.astype(np.int64) + 1))
    for class_id in range(4):
        polygons = frame.geometry[frame.class_id == class_id].values
        expected = (scene == class_id).sum() * abs(transform.determinant)
        assert shapely.union_all(polygons).area == pytest.approx(expected, rel=1e-9)
        assert shapely.area(polygons).sum() == pytest.approx(expected, rel=1e-9)


def test_blocks_leave_no_seams_a_region_across_blocks_is_one_polygon(write_raster: WriteRaster) -> None:
    path = write_raster(class_scene(75, 93, seed=3))
    whole = _sorted(polygonize(path, simplify=None, block_size=4096))
    blocks = _sorted(polygonize(path, simplify=None, block_size=16))
    assert len(blocks) == len(whole)
    assert (blocks.class_id.values == whole.class_id.values).all()
    assert shapely.equals(blocks.geometry.values, whole.geometry.values).all()


def test_holes_are_kept_across_blocks_and_after_simplification(write_raster: WriteRaster) -> None:
    scene = np.zeros((41, 47), dtype=np.uint8)
    scene[4:37, 4:43] = 1  # a ring of class 1 ...
    scene[7:34, 7:40] = 2  # ... around an island of class 2 ...
    scene[15:20, 15:20] = 255  # ... with a no-data hole
    for simplify in (None, "auto"):
        frame = polygonize(write_raster(scene, f"holes-{simplify}.tif"), simplify=simplify, block_size=16)
        assert sorted(frame.class_id) == [0, 1, 2]
        holes = dict(zip(frame.class_id, shapely.get_num_interior_rings(frame.geometry.values), strict=True))
        assert holes == {0: 1, 1: 1, 2: 1}


def test_pixels_touching_only_at_a_block_corner_stay_apart(write_raster: WriteRaster) -> None:
    scene = np.zeros((32, 32), dtype=np.uint8)
    scene[15, 15] = scene[16, 16] = 1  # diagonal neighbours across the corner of four 16-pixel blocks
    scene[15, 16] = scene[16, 15] = 2
    frame = polygonize(write_raster(scene), simplify=None, block_size=16)
    assert sorted(frame.class_id) == [0, 1, 1, 2, 2]


@pytest.mark.parametrize("grid", ["utm", "geographic"])
def test_simplified_neighbours_share_edges_without_gaps_or_overlaps(write_raster: WriteRaster, grid: str) -> None:
    path = write_raster(class_scene(), grid=grid)
    exact = polygonize(path, simplify=None, block_size=16).geometry.values
    simplified = polygonize(path, simplify="auto", block_size=16).geometry.values
    assert shapely.get_num_coordinates(simplified).sum() < 0.8 * shapely.get_num_coordinates(exact).sum()
    assert shapely.is_valid(simplified).all()
    assert shapely.coverage_is_valid(simplified)
    union = shapely.union_all(simplified)
    assert shapely.area(simplified).sum() == pytest.approx(union.area, rel=1e-9)  # no overlaps
    first, second = shapely.STRtree(simplified).query(simplified, predicate="intersects")
    pairs = first < second
    overlap = shapely.area(shapely.intersection(simplified[first[pairs]], simplified[second[pairs]]))
    assert overlap.max() < 1e-9 * union.area
    exact_union = shapely.union_all(exact)  # no gaps: the union has only the no-data hole, and the same area
    assert shapely.get_num_interior_rings(union) == shapely.get_num_interior_rings(exact_union) == 1
    assert union.area == pytest.approx(exact_union.area, rel=1e-3)


@pytest.mark.parametrize(
    ("dtype", "nodata", "value", "excluded"),
    [
        ("uint8", 255, 255, True),
        ("uint8", 3, 3, True),
        ("uint8", None, 255, True),  # 255 is cmt-geo's no-data in uint8 class rasters, declared or not
        ("int16", -1, -1, True),
        ("uint16", None, 255, False),  # a class like any other in wider rasters without a declared no-data
    ],
)
def test_nodata_pixels_get_no_polygons(
    write_raster: WriteRaster, dtype: str, nodata: int | None, value: int, excluded: bool
) -> None:
    scene = class_scene().astype(dtype)
    scene[scene == 255] = 0
    scene[20:30, 30:70] = value
    frame = polygonize(write_raster(scene, nodata=nodata), simplify=None, block_size=16)
    assert (value not in set(frame.class_id)) == excluded
    covered = (scene != value).sum() if excluded else scene.size
    assert shapely.union_all(frame.geometry.values).area == pytest.approx(covered * 0.25)


def test_attributes_utm(write_raster: WriteRaster) -> None:
    names = ["road", "building", "tree", "grass"]
    frame = polygonize(write_raster(class_scene()), class_names=names, block_size=16)
    assert list(frame.columns) == ["class_id", "class_name", "area_m2", "perimeter_m", "geometry"]
    assert frame.class_id.dtype == np.int32
    assert (frame.class_name == [names[i] for i in frame.class_id]).all()
    assert frame.crs.to_epsg() == 32632
    polygons = frame.geometry.values  # oriented as RFC 7946 asks: exteriors counter-clockwise, holes clockwise
    assert shapely.is_ccw(shapely.get_exterior_ring(polygons)).all()
    holed = polygons[shapely.get_num_interior_rings(polygons) > 0]
    assert holed.size > 0
    assert not shapely.is_ccw(shapely.get_interior_ring(holed, 0)).any()
    # UTM distorts areas by its scale factor (0.9996 on the central meridian): within 0.1 % of planar
    assert frame.area_m2.values == pytest.approx(frame.area.values, rel=1e-3)
    assert frame.perimeter_m.values == pytest.approx(frame.length.values, rel=1e-3)


def test_attributes_are_metres_for_a_geographic_crs(write_raster: WriteRaster) -> None:
    frame = polygonize(write_raster(class_scene(), grid="geographic"), block_size=16)
    assert frame.crs.to_epsg() == 4326
    geod = Geod(ellps="WGS84")  # geodesic truth; its area needs holes oriented against the exterior
    area = [geod.geometry_area_perimeter(shapely.orient_polygons(polygon))[0] for polygon in frame.geometry]
    perimeter = [sum(map(geod.geometry_length, shapely.get_rings(polygon))) for polygon in frame.geometry]
    assert frame.area_m2.values == pytest.approx(area, rel=1e-3)
    assert frame.perimeter_m.values == pytest.approx(perimeter, rel=1e-3)
    assert frame.area_m2.sum() == pytest.approx((class_scene() != 255).sum() * 0.7437 * 1.1131, rel=0.01)


def test_class_names_come_from_the_raster_then_default_and_must_name_every_id(write_raster: WriteRaster) -> None:
    scene = class_scene()
    named = polygonize(write_raster(scene, "named.tif", class_names=["a", "b", "c", "d"]), block_size=16)
    assert (named.class_name == np.array(["a", "b", "c", "d"])[named.class_id]).all()
    unnamed = polygonize(write_raster(scene, "unnamed.tif"), block_size=16)
    assert (unnamed.class_name == [f"class_{i}" for i in unnamed.class_id]).all()
    with pytest.raises(ConfigError, match=r"holds class id 3 but 3 class names \['a', 'b', 'c'\].*--classes"):
        polygonize(write_raster(scene, "unnamed.tif"), class_names=["a", "b", "c"])
    for bad in ("road,tree", "[1, 2]", '{"0": "road"}'):
        path = write_raster(scene, "bad-tag.tif")
        with rasterio.open(path, "r+") as dst:
            dst.update_tags(class_names=bad)
        with pytest.raises(InvalidRasterError, match="is not a JSON list of class names"):
            polygonize(path)


def test_min_area_merges_slivers_into_the_longest_shared_edge_neighbour(write_raster: WriteRaster) -> None:
    scene = np.zeros((20, 31), dtype=np.uint8)
    scene[:, 15:] = 1
    scene[5:9, 15:17] = 2  # 2 m² sliver: 4 px edge with class 0, 8 px with class 1
    scene[13:18, 23:28] = 255
    scene[15, 25] = 3  # 0.25 m² speck inside no-data: no neighbour, dropped
    scene[2, 2] = 3  # 0.25 m² speck inside class 0
    frame = polygonize(write_raster(scene), simplify=None, min_area=3.0, block_size=16)
    assert sorted(frame.class_id) == [0, 1]
    areas = dict(zip(frame.class_id, frame.area, strict=True))
    assert areas[1] == pytest.approx(((scene == 1).sum() + 8) * 0.25)
    assert areas[0] == pytest.approx(((scene == 0).sum() + 1) * 0.25)
    assert shapely.coverage_is_valid(frame.geometry.values)
    kept = polygonize(write_raster(scene, "kept.tif"), simplify=None, min_area=0.2, block_size=16)
    assert sorted(kept.class_id) == [0, 1, 2, 3, 3]


@pytest.mark.parametrize("dtype", ["int8", "uint16", "int32", "uint32", "int64"])
def test_any_integer_raster_gives_the_same_polygons(write_raster: WriteRaster, dtype: str) -> None:
    scene = class_scene()
    reference = _sorted(polygonize(write_raster(scene, "uint8.tif"), block_size=16))
    wide = scene.astype(dtype)
    wide[scene == 255] = 100
    frame = _sorted(polygonize(write_raster(wide, f"{dtype}.tif", nodata=100), block_size=16))
    assert (frame.class_id.values == reference.class_id.values).all()
    assert shapely.equals(frame.geometry.values, reference.geometry.values).all()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda path, write: path / "missing.tif", r"missing.tif does not exist; give the path of a class raster"),
        (lambda path, write: _text_file(path), r"cannot read raster .*notes.tif"),
        (
            lambda path, write: write(np.zeros((9, 9), np.float32)),
            r"1 band\(s\) of float32; vectorize needs one band of integer class ids",
        ),
        (lambda path, write: write(np.zeros((3, 9, 9), np.uint8)), r"3 band\(s\) of uint8"),
        (lambda path, write: write(np.zeros((9, 9), np.uint8), crs=None), r"has no CRS.*gdal_edit.py -a_srs"),
        (lambda path, write: write(np.full((9, 9), -2, np.int16), nodata=None), r"holds class id -2 .*-a_nodata -2"),
        (
            lambda path, write: write(np.full((9, 9), 2**31 + 5, np.uint32), nodata=None),
            r"holds class ids 2147483653..2147483653, beyond int32",
        ),
    ],
)
def test_bad_inputs_raise_one_line_errors_that_say_what_to_do(
    tmp_path: Path, write_raster: WriteRaster, make, message: str
) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidRasterError, match=message) as error:
        polygonize(make(tmp_path, write_raster))
    assert "\n" not in str(error.value)


def _text_file(folder: Path) -> Path:
    path = folder / "notes.tif"
    path.write_text("not a raster")
    return path


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"simplify": -1.0}, r"simplify=-1.0 is not a simplification"),
        ({"simplify": "fine"}, r"simplify='fine' is not a simplification"),
        ({"min_area": -2.0}, r"min_area=-2.0 must be an area >= 0"),
        ({"block_size": 0}, r"block_size=0 must be a positive number of pixels"),
    ],
)
def test_bad_options_are_config_errors(write_raster: WriteRaster, options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        polygonize(write_raster(class_scene()), **options)  # type: ignore[arg-type]


def test_vectorize_checks_the_output_before_any_work(tmp_path: Path) -> None:
    missing = tmp_path / "missing.tif"
    with pytest.raises(ConfigError, match=r"unknown suffix '.kml'; use one of .gpkg, .shp, .geojson, .parquet"):
        vectorize(missing, tmp_path / "out.kml")
    (tmp_path / "out.gpkg").write_text("mine")
    with pytest.raises(OutputExistsError, match=r"out.gpkg exists; pass --overwrite"):
        vectorize(missing, tmp_path / "out.gpkg")


class _Recorder(NullProgress):
    def __init__(self, cancel_after: int | None = None) -> None:
        super().__init__()
        self.reports: list[tuple[int, int | None, str]] = []
        self.cancel_after = cancel_after

    def report(self, done: int, total: int | None, message: str = "") -> None:
        self.reports.append((done, total, message))
        if self.cancel_after is not None and done >= self.cancel_after:
            self.cancel()


def test_progress_counts_blocks_and_stages_and_cancel_writes_nothing(tmp_path: Path, write_raster: WriteRaster) -> None:
    path = write_raster(class_scene())  # 75 x 93 in 32-pixel blocks: 3 x 3 blocks
    progress = _Recorder()
    vectorize(path, tmp_path / "out.gpkg", block_size=32, progress=progress)
    assert [done for done, _, _ in progress.reports] == list(range(1, 14))
    assert {total for _, total, _ in progress.reports} == {13}
    assert progress.reports[-1][2] == "written"
    with pytest.raises(CanceledError):
        vectorize(path, tmp_path / "canceled.gpkg", block_size=32, progress=_Recorder(cancel_after=2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["classes.tif", "out.gpkg"]


def test_a_raster_of_only_nodata_gives_an_empty_layer(tmp_path: Path, write_raster: WriteRaster) -> None:
    path = write_raster(np.full((20, 30), 255, np.uint8))
    frame = polygonize(path, min_area=1.0, block_size=16)
    assert len(frame) == 0
    assert list(frame.columns) == ["class_id", "class_name", "area_m2", "perimeter_m", "geometry"]
    assert vectorize(path, tmp_path / "empty.gpkg").is_file()
