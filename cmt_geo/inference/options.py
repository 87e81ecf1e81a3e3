"""What a prediction run is asked for: tiling, batching, test-time augmentation, band mapping, no-data, device."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cmt_geo.errors import ConfigError
from cmt_geo.validation import validate_fields

TestTimeAugmentation = Literal["none", "flip", "d4"]


@dataclass(frozen=True)
class PredictOptions:
    """How `predict_raster` tiles and feeds a raster.

    Args:
        tile_size: window side in pixels; the card's training patch size when None.
        overlap: pixels shared by neighbouring windows (blended with a Hann window); a quarter tile when None.
        batch_size: windows per forward pass.
        tta: test-time augmentation: "none", "flip" (4 flips) or "d4" (8 flips and rotations), probabilities averaged.
        bands: 1-based input bands in the card's band order; when None, bands are matched by name (band
            descriptions) or taken in order when the input has exactly the card's band count.
        nodata: input value that marks pixels without data; the raster's own mask (no-data, alpha) when None.
        device: "auto" (CUDA, else MPS, else CPU), "cpu", "mps", "cuda" or "cuda:N".
        resample: predict at the card's training pixel size (the input resampled bilinearly) and write the outputs
            at the input's; for inputs whose pixel size differs from the training one.
        compile: run the model compiled (`cmt_geo.models.compile_for_inference`): minutes of compiling before the
            first batch, then faster batches (17 % for `cmt_unet_base` on a CPU); for long runs on large rasters.
            Batches are padded to one size (at most `batch_size`, spread evenly over a grid row), so the model
            compiles once; a raster smaller than one tile is predicted uncompiled.
    """

    tile_size: int | None = None
    overlap: int | None = None
    batch_size: int = 4
    tta: TestTimeAugmentation = "none"
    bands: tuple[int, ...] | None = None
    nodata: float | None = None
    device: str = "auto"
    resample: bool = False
    compile: bool = False

    def __post_init__(self) -> None:
        validate_fields(self, "predict option")
        if self.tile_size is not None and not 32 <= self.tile_size <= 8192:
            raise ConfigError(f"tile_size={self.tile_size} is out of range; use 32..8192 pixels, e.g. 512")
        if self.overlap is not None and self.overlap < 0:
            raise ConfigError(f"overlap={self.overlap} must be 0 or more pixels, e.g. 64")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size={self.batch_size} must be at least 1")
        if self.bands is not None and (not self.bands or min(self.bands) < 1):
            raise ConfigError(f"bands={self.bands} must list 1-based band numbers, e.g. (3, 2, 1)")

    def grid(self, patch_size: int) -> tuple[int, int]:
        """(tile size, stride) for a model trained on `patch_size` patches.

        Raises:
            ConfigError: an overlap of a whole tile or more.
        """
        tile = self.tile_size or patch_size
        overlap = tile // 4 if self.overlap is None else self.overlap
        if overlap >= tile:
            raise ConfigError(f"overlap={overlap} must be smaller than the tile size {tile}; e.g. {tile // 4}")
        return tile, tile - overlap
