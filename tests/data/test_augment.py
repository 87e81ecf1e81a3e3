"""GPU-side augmentation: masks follow the image, ignored pixels stay ignored, normalization round-trips."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from cmt_geo.data import (
    IGNORE_INDEX,
    AugmentConfig,
    GpuAugmentation,
    LoveDA,
    NormalizationStats,
    PatchWindow,
    SplitOptions,
    dataset_normalization,
    estimate_normalization,
)
from cmt_geo.errors import ConfigError

GEOMETRY_ONLY = {"brightness": 0.0, "contrast": 0.0, "saturation": 0.0, "color_p": 0.0}


def _batch(channels: int = 3, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose every band equals mask * 10 + 5, so any misalignment between the two shows."""
    generator = torch.Generator().manual_seed(0)
    mask = torch.randint(0, 6, (4, size, size), generator=generator)
    mask[:, :3, :5] = IGNORE_INDEX  # e.g. no-data
    image = (mask.clamp(max=20) * 10 + 5).float().unsqueeze(1).repeat(1, channels, 1, 1)
    return image, mask


@pytest.mark.parametrize("channels", [3, 4])
def test_flips_and_rotations_move_mask_with_image(channels: int) -> None:
    image, mask = _batch(channels)
    augment = GpuAugmentation(AugmentConfig(scale=(1.0, 1.0), **GEOMETRY_ONLY))
    out_image, out_mask = augment(image, mask, generator=torch.Generator().manual_seed(3))
    assert out_image.shape == image.shape
    assert out_mask.dtype == torch.int64
    assert torch.equal(out_image[:, 0], (out_mask.clamp(max=20) * 10 + 5).float())
    assert not torch.equal(out_mask, mask)  # something moved
    assert (out_mask == IGNORE_INDEX).sum() == (mask == IGNORE_INDEX).sum()


def test_scale_jitter_keeps_alignment_and_pads_with_ignore() -> None:
    image, mask = _batch()
    augment = GpuAugmentation(AugmentConfig(scale=(0.5, 0.6), rot90=False, hflip=0, vflip=0, **GEOMETRY_ONLY))
    out_image, out_mask = augment(image, mask)
    border = out_mask[:, 0]
    assert (border == IGNORE_INDEX).all()  # zoomed out: the edge comes from outside the patch
    labelled = out_mask != IGNORE_INDEX
    expected = (out_mask.clamp(max=20) * 10 + 5).float()
    close = (out_image[:, 0] - expected).abs()[labelled] < 60  # bilinear image vs nearest mask at class edges
    assert close.float().mean() > 0.7
    assert set(out_mask.unique().tolist()) <= {0, 1, 2, 3, 4, 5, IGNORE_INDEX}


def test_colour_jitter_changes_values_not_masks() -> None:
    image, mask = _batch()
    augment = GpuAugmentation(AugmentConfig(hflip=0, vflip=0, rot90=False, scale=(1, 1), color_p=1.0))
    out_image, out_mask = augment(image, mask)
    assert torch.equal(out_mask, mask)
    assert not torch.allclose(out_image, image)
    assert out_image.min() >= 0
    assert out_image.max() <= 255


def test_compact_batches_and_normalization() -> None:
    image, mask = _batch(4)
    stats = NormalizationStats((50.0,) * 4, (10.0,) * 4, ("r", "g", "b", "n"))
    augment = GpuAugmentation(AugmentConfig(scale=(1, 1), **GEOMETRY_ONLY), stats)
    out_image, out_mask = augment(image.to(torch.uint8), mask.to(torch.uint8), torch.Generator().manual_seed(0))
    assert out_image.dtype == torch.float32
    assert out_mask.dtype == torch.int64
    assert torch.allclose(out_image[:, 0], ((out_mask.clamp(max=20) * 10 + 5).float() - 50) / 10)


def test_normalization_stats_round_trip_and_estimate() -> None:
    stats = NormalizationStats((1.0, 2.0), (3.0, 4.0), ("a", "b"))
    assert NormalizationStats.from_dict(stats.to_dict()) == stats
    with pytest.raises(ConfigError, match="must be exactly"):
        NormalizationStats.from_dict({"mean": [1.0], "std": [1.0]})
    with pytest.raises(ConfigError, match="2 means, 1 stds"):
        NormalizationStats((1.0, 2.0), (3.0,), ("a", "b"))
    generator = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(20):
        noise = torch.randn(2, 16, 16, generator=generator)
        image = torch.stack([noise[0] * 2 + 7, noise[1] * 5 - 1])
        mask = torch.zeros(16, 16, dtype=torch.int64)
        image[:, :4], mask[:4] = 1000.0, IGNORE_INDEX  # ignored pixels do not count
        samples.append({"image": image, "mask": mask})
    estimated = estimate_normalization(samples, ["a", "b"])
    assert estimated.mean == pytest.approx((7.0, -1.0), abs=0.3)
    assert estimated.std == pytest.approx((2.0, 5.0), rel=0.1)
    with pytest.raises(ConfigError, match="no samples"):
        estimate_normalization([], ["a"])


def test_dataset_normalization_matches_the_pixels(pristine: Callable[[str], Path]) -> None:
    dataset = LoveDA(pristine("loveda"), split_options=SplitOptions(val_fraction=0))
    stats = dataset_normalization(dataset, patch=16, max_samples=1000)
    assert stats.bands == ("red", "green", "blue")
    pixels = []
    for tile in range(len(dataset.tiles)):
        sample = dataset[PatchWindow(tile, 0, 0, 32, 32)]
        labelled = sample["mask"] != IGNORE_INDEX
        pixels.append(sample["image"][:, labelled])
    values = torch.cat(pixels, dim=1).double()
    assert stats.mean == pytest.approx(values.mean(1).tolist(), rel=1e-6)
    assert stats.std == pytest.approx(values.std(1, correction=0).tolist(), rel=1e-6)


def test_bad_augment_options_and_shapes() -> None:
    with pytest.raises(ConfigError, match="scale="):
        AugmentConfig(scale=(1.2, 0.8))
    with pytest.raises(ConfigError, match="hflip=2"):
        AugmentConfig(hflip=2)
    with pytest.raises(ConfigError, match=r"expected image \(B, C, H, W\)"):
        GpuAugmentation()(torch.zeros(3, 8, 8), torch.zeros(8, 8))
