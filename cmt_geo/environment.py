"""What this installation can do: package versions, devices and optional backends."""

from __future__ import annotations

import importlib.metadata
import platform
from typing import Any

from cmt_geo._version import __version__

_PACKAGES = ("torch", "torchvision", "torchgeo", "lightning", "timm", "rasterio", "geopandas", "numba", "mamba-ssm")


def _installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment_report() -> dict[str, Any]:
    """Versions of cmt-geo and its key dependencies, the compute devices torch sees, and the selective-scan backends
    each device type can use (fastest first)."""
    import torch

    from cmt_geo.ops.selective_scan import available_backends

    devices = ["cpu"]
    device_types = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]
        device_types.append("cuda")
    if torch.backends.mps.is_available():
        devices.append("mps")
        device_types.append("mps")
    return {
        "cmt-geo": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {name: _installed_version(name) for name in _PACKAGES},
        "devices": devices,
        "cpu_threads": torch.get_num_threads(),
        "scan_backends": {device_type: available_backends(device_type) for device_type in device_types},
    }
