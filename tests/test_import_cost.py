"""`import cmt_geo` must stay cheap: no heavy or optional dependency may load with it."""

import subprocess
import sys

HEAVY = ("torchgeo", "lightning", "click", "mamba_ssm", "selective_scan_cuda", "triton", "qgis", "numba", "rasterio")


def _modules_loaded_by(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return {name.split(".")[0] for name in out.split()}


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
