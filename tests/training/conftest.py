"""Small synthetic datasets and a training config over them, fast enough for CPU tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from cmt_geo.data import write_synthetic
from cmt_geo.training.config import TrainConfig, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

#: A plain U-Net on 64 px patches: a few seconds for a handful of steps on two CPU cores.
FAST = [
    "model.architecture=unet",
    "data.patch_size=64",
    "data.batch_size=2",
    "data.samples_per_epoch=12",
    "data.val_block_size=128",
    "data.val_gap=16",
    "data.normalization_samples=16",
    "trainer.max_steps=4",
    "trainer.val_every_n_batches=4",
    "trainer.accelerator=cpu",
    "logging.every_n_steps=1",
]


@pytest.fixture(scope="session")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One 256 px synthetic scene in the raster layout (images/scene.tif, labels/scene.tif)."""
    return write_synthetic(tmp_path_factory.mktemp("training") / "scene", size=256, seed=3)


@pytest.fixture
def fast_config(scene: Path) -> Callable[..., TrainConfig]:
    """configs/synthetic.yaml on the scene, made fast; more `section.key=value` overrides may follow."""

    def make(*overrides: str, base: Sequence[str] = FAST) -> TrainConfig:
        return load_config(CONFIGS / "synthetic.yaml", [f"data.root={scene}", *base, *overrides])

    return make
