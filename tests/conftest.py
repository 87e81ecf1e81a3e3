"""Shared pytest configuration: the `gpu` marker skips without CUDA; a small checkpoint and rasters to predict on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine

from cmt_geo.card import ModelCard, NormalizationStats
from cmt_geo.models import create_model, save_checkpoint

CLASSES = ("water", "field", "forest")
COLORS = ((0, 0, 255), (255, 255, 0), (0, 128, 0))
BANDS = ("red", "green", "blue", "nir")


def write_raster(
    path: Path,
    height: int,
    width: int,
    *,
    crs: str = "EPSG:32632",
    transform: Affine | None = None,
    nodata: float | None = None,
    seed: int = 0,
    dtype: str = "uint16",
    descriptions: tuple[str, ...] = BANDS,
    maximum: float | None = None,
) -> Path:
    """A smooth random 4-band raster (fields of blobs, values from 1 to `maximum`), so a model's output has
    structure."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 1000, (len(descriptions), height // 16 + 2, width // 16 + 2))
    image = np.kron(coarse, np.ones((16, 16)))[:, :height, :width] + rng.normal(
        0, 20, (len(descriptions), height, width)
    )
    transform = transform or Affine(0.5, 0, 500000.0, 0, -0.5, 9120475.75)
    profile = {"driver": "GTiff", "height": height, "width": width, "count": len(descriptions), "dtype": dtype}
    with rasterio.open(path, "w", crs=crs, transform=transform, nodata=nodata, **profile) as dst:
        dst.write(np.clip(image, 1, maximum).astype(dtype))
        dst.descriptions = descriptions
    return path


def card_for(model: torch.nn.Module, patch_size: int = 64) -> ModelCard:
    return ModelCard.for_model(
        model,  # type: ignore[arg-type]
        class_names=CLASSES,
        class_colors=COLORS,
        normalization=NormalizationStats(mean=(500.0,) * 4, std=(300.0,) * 4, bands=BANDS),
        patch_size=patch_size,
        ground_sample_distance=0.5,
    )


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised U-Net (ResNet-18) checkpoint for 4 bands and 3 classes, trained on 64 px patches."""
    torch.manual_seed(0)
    model = create_model("unet", num_classes=len(CLASSES), in_channels=len(BANDS))
    path = tmp_path_factory.mktemp("checkpoint") / "unet.ckpt"
    save_checkpoint(model, path, card_for(model))
    return path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not any(item.get_closest_marker("gpu") for item in items):
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)
