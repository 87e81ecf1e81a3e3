"""Write the plugin tests' inputs with the project's environment: a small U-Net checkpoint and synthetic GeoTIFFs.

Run by tests/qgis_plugin/conftest.py as `.venv/bin/python tests/qgis_plugin/make_fixtures.py FOLDER` (QGIS's Python
has no torch); it reuses the main suite's fixture helpers, so the files match what the CLI tests use.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cmt_geo.models import create_model, save_checkpoint
from tests.conftest import BANDS, CLASSES, card_for, write_raster


def main(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = create_model("unet", num_classes=len(CLASSES), in_channels=len(BANDS))
    save_checkpoint(model, folder / "model.ckpt", card_for(model))
    write_raster(folder / "small.tif", 64, 96, seed=1)  # one row of windows at 64 px: a second of prediction
    write_raster(folder / "large.tif", 512, 512, seed=2)  # 100 windows: long enough to cancel in the middle
    write_raster(folder / "three_bands.tif", 32, 32, seed=3, descriptions=("a", "b", "c"))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
