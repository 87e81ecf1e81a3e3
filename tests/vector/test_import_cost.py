"""`import cmt_geo.vector` loads no torch, torchgeo, timm or model: vectorizing needs none of them."""

import subprocess
import sys

FORBIDDEN = {"torch", "torchgeo", "timm", "lightning", "kornia", "mamba_ssm", "triton"}


def test_import_cmt_geo_vector_loads_no_torch_or_model() -> None:
    code = "import sys, cmt_geo.vector; cmt_geo.vector.vectorize; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = {name.split(".")[0] for name in out.split()}
    assert "shapely" in loaded  # the import really happened
    assert loaded.isdisjoint(FORBIDDEN), sorted(loaded & FORBIDDEN)
    assert not {name for name in out.split() if name.startswith("cmt_geo.models")}
