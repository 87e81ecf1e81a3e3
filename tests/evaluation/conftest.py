"""A small synthetic Vaihingen folder and a random U-Net checkpoint that fits it (IRRG, six classes)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cmt_geo.card import ModelCard, NormalizationStats
from cmt_geo.data import Vaihingen, write_synthetic
from cmt_geo.models import create_model, save_checkpoint


def write_vaihingen_case(folder: Path) -> tuple[Path, Path]:
    """(dataset root, checkpoint): three 96 px tiles (one test tile) and an untrained U-Net for them."""
    root = write_synthetic(folder / "vaihingen", layout="vaihingen", size=96, tiles=3)
    torch.manual_seed(0)
    model = create_model("unet", num_classes=len(Vaihingen.classes), in_channels=3)
    card = ModelCard.for_model(
        model,
        class_names=Vaihingen.classes,
        class_colors=Vaihingen.colors,
        normalization=NormalizationStats(mean=(110.0,) * 3, std=(50.0,) * 3, bands=("nir", "red", "green")),
        patch_size=64,
    )
    checkpoint = folder / "vaihingen.ckpt"
    save_checkpoint(model, checkpoint, card)
    return root, checkpoint


@pytest.fixture(scope="session")
def vaihingen_case(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(dataset root, checkpoint) of `write_vaihingen_case`, made once."""
    return write_vaihingen_case(tmp_path_factory.mktemp("evaluation"))
