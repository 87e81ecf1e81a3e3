"""`import cmt_geo` must stay cheap: no heavy or optional dependency may load with it."""

import subprocess
import sys

HEAVY = ("torchgeo", "lightning", "click", "mamba_ssm", "selective_scan_cuda", "triton", "qgis", "numba", "rasterio")


def _full_modules_loaded_by(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    return set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split())


def _modules_loaded_by(statement: str) -> set[str]:
    return {name.split(".")[0] for name in _full_modules_loaded_by(statement)}


def test_import_cmt_geo_loads_no_heavy_module() -> None:
    loaded = _modules_loaded_by("import cmt_geo, cmt_geo.errors, cmt_geo.progress, cmt_geo.environment")
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def test_import_cmt_geo_models_loads_no_heavy_module() -> None:
    loaded = _modules_loaded_by("import cmt_geo.models, cmt_geo.layers.wavelet, cmt_geo.layers.attention")
    assert loaded.isdisjoint({*HEAVY, "timm"}), sorted(loaded & {*HEAVY, "timm"})


def test_data_package_labels_registry_and_outputs_load_no_torch_or_torchgeo() -> None:
    loaded = _modules_loaded_by(
        "import cmt_geo.data, cmt_geo.data.labels, cmt_geo.data.registry, cmt_geo.io, cmt_geo.io.outputs; "
        "cmt_geo.data.DATASET_NAMES"
    )
    assert loaded.isdisjoint({*HEAVY, "torch", "kornia"}), sorted(loaded & {*HEAVY, "torch", "kornia"})


def test_vector_package_loads_no_torch_or_model() -> None:
    modules = _full_modules_loaded_by("import cmt_geo.vector; cmt_geo.vector.vectorize")
    loaded = {name.split(".")[0] for name in modules}
    assert "shapely" in loaded  # the import really happened
    forbidden = {"torch", "torchgeo", "timm", "lightning", "kornia", "mamba_ssm", "triton"}
    assert loaded.isdisjoint(forbidden), sorted(loaded & forbidden)
    assert not {name for name in modules if name.startswith("cmt_geo.models")}


def test_evaluation_package_loads_numpy_only() -> None:
    """Training imports the metrics; torch, rasterio and matplotlib wait for `evaluate` to run."""
    loaded = _modules_loaded_by("import cmt_geo.evaluation; cmt_geo.evaluation.evaluate")
    assert "numpy" in loaded  # the import really happened
    forbidden = {"torch", "torchgeo", "rasterio", "lightning", "matplotlib", "xarray", "click"}
    assert loaded.isdisjoint(forbidden), sorted(loaded & forbidden)
