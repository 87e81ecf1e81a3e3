"""GPU-side augmentation: masks follow the image, ignored pixels stay ignored, normalization round-trips."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

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
STILL = {"hflip": 0.0, "vflip": 0.0, "rot90": False, "scale": (1.0, 1.0)}


def _batch(
    channels: int = 3, size: int = 32, block: int = 1, nodata: bool = True, batch: int = 4
) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks of random classes in `block`-sized squares, images whose every band is mask * 10 + 5.

    Any misalignment between image and mask shows, and a random layout has no symmetry a flip or transpose keeps.
    """
    generator = torch.Generator().manual_seed(0)
    classes = torch.randint(0, 6, (batch, size // block, size // block), generator=generator)
    mask = classes.repeat_interleave(block, 1).repeat_interleave(block, 2)
    if nodata:
        mask[:, :3, :5] = IGNORE_INDEX
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


@pytest.mark.parametrize(
    ("dtype", "low", "high"),
    [(torch.uint16, 0, 65535), (torch.uint16, 0, 4095), (torch.float32, 0, 1), (torch.float32, -50, 50)],
)
def test_geometry_keeps_values_of_any_range(dtype: torch.dtype, low: float, high: float) -> None:
    generator = torch.Generator().manual_seed(0)
    image = (torch.rand(4, 4, 16, 16, generator=generator) * (high - low) + low).to(dtype)
    image[..., 0, 0] = high
    mask = torch.zeros(4, 16, 16, dtype=torch.int64)
    out_image, _ = GpuAugmentation(AugmentConfig(scale=(1.0, 1.0), color_p=0))(image, mask, generator)
    assert not torch.equal(out_image, image.float())  # something moved
    assert torch.equal(out_image.flatten(1).sort().values, image.float().flatten(1).sort().values)  # exactly
    scaled, _ = GpuAugmentation(AugmentConfig(color_p=0))(image, mask, generator)  # README's defaults, scale jitter
    assert scaled.max() > high - 0.1 * (high - low)
    assert scaled.min() < low + 0.1 * (high - low)


def test_colour_jitter_changes_values_not_masks() -> None:
    image, mask = _batch()
    augment = GpuAugmentation(AugmentConfig(color_p=1.0, **STILL))
    out_image, out_mask = augment(image.to(torch.uint8), mask, torch.Generator().manual_seed(0))
    assert torch.equal(out_mask, mask)
    assert not torch.allclose(out_image, image)
    assert out_image.min() >= 0
    assert out_image.max() <= 255
    again, _ = augment(image.to(torch.uint8), mask, torch.Generator().manual_seed(0))
    assert torch.equal(again, out_image)  # the generator seeds colour jitter too


@pytest.mark.parametrize("channels", [1, 3, 4, 6])
def test_colour_jitter_changes_every_chosen_image_of_any_band_count(channels: int) -> None:
    image = torch.rand(4, channels, 16, 16, generator=torch.Generator().manual_seed(0)) * 200 + 20
    mask = torch.zeros(4, 16, 16, dtype=torch.int64)
    out_image, out_mask = GpuAugmentation(AugmentConfig(color_p=1.0, **STILL))(image, mask)
    assert ((out_image - image).abs().amax((1, 2, 3)) > 1).all()
    assert torch.equal(out_mask, mask)


@pytest.mark.parametrize("channels", [3, 4])
def test_saturation_and_hue_only_change_three_band_images(channels: int) -> None:
    image = torch.rand(4, channels, 16, 16, generator=torch.Generator().manual_seed(0)) * 200 + 20
    mask = torch.zeros(4, 16, 16, dtype=torch.int64)
    config = AugmentConfig(brightness=0, contrast=0, saturation=0.9, hue=0.5, color_p=1.0, **STILL)
    out_image, _ = GpuAugmentation(config)(image, mask)
    if channels == 3:
        luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        assert ((out_image - image).abs().amax((1, 2, 3)) > 1).all()
        assert torch.allclose((out_image * luma).sum(1), (image * luma).sum(1), atol=1e-2)  # only colour moved
    else:
        assert torch.allclose(out_image, image, atol=1e-3)


def test_colour_jitter_keeps_the_input_range() -> None:
    generator = torch.Generator().manual_seed(0)
    counts = (torch.rand(8, 4, 16, 16, generator=generator) * 65535).to(torch.uint16)
    mask = torch.zeros(8, 16, 16, dtype=torch.int64)
    out, _ = GpuAugmentation(AugmentConfig(color_p=1.0, **STILL))(counts, mask, generator)
    assert out.min() == 0
    assert out.max() == 65535  # brightened counts stop at what uint16 holds, not at 255
    assert (out > 255).float().mean() > 0.9
    reflectance = torch.rand(8, 4, 16, 16, generator=generator) * 1.2 - 0.1
    out, _ = GpuAugmentation(AugmentConfig(color_p=1.0, **STILL))(reflectance, mask, generator)
    assert out.min() < -0.1
    assert out.max() > 1.1  # float input is never clamped
    out, _ = GpuAugmentation(AugmentConfig(color_p=1.0, value_range=(0, 1), **STILL))(reflectance, mask, generator)
    assert out.min() == 0
    assert out.max() == 1


def test_scale_flips_and_rotations_keep_image_and_mask_aligned() -> None:
    image, mask = _batch(size=64, block=16, batch=8)
    augment = GpuAugmentation(AugmentConfig(scale=(0.5, 1.5), **GEOMETRY_ONLY))
    out_image, out_mask = augment(image, mask, torch.Generator().manual_seed(0))
    labels = out_mask.unsqueeze(1).float()
    neighbours_agree = F.max_pool2d(labels, 3, 1, 1) == -F.max_pool2d(-labels, 3, 1, 1)
    interior = neighbours_agree.squeeze(1) & (out_mask != IGNORE_INDEX)  # away from class and patch edges
    assert interior.float().mean() > 0.5
    assert torch.allclose(out_image[:, 0][interior], (out_mask * 10 + 5).float()[interior], atol=1e-3)
    assert set(out_mask.unique().tolist()) <= {0, 1, 2, 3, 4, 5, IGNORE_INDEX}
    zoomed_out = (out_mask[:, 0] == IGNORE_INDEX).all(1)  # the edge comes from outside the patch
    assert zoomed_out.any()
    assert not zoomed_out.all()


def test_normalization_zeroes_pixels_from_outside_the_patch() -> None:
    image, mask = _batch(4, block=8, nodata=False)
    stats = NormalizationStats((1000.0,) * 4, (10.0,) * 4, ("r", "g", "b", "n"))
    augment = GpuAugmentation(AugmentConfig(scale=(0.5, 0.8), **GEOMETRY_ONLY), stats)
    out_image, out_mask = augment(image, mask, torch.Generator().manual_seed(0))
    outside = (out_mask == IGNORE_INDEX).unsqueeze(1).expand_as(out_image)
    assert outside.any()
    assert (out_image[outside] == 0).all()
    assert (out_image[~outside] != 0).all()


@pytest.mark.gpu
def test_cuda_matches_cpu() -> None:
    image, mask = _batch(3, size=64, block=16)
    stats = NormalizationStats((100.0,) * 3, (10.0,) * 3, ("r", "g", "b"))
    augment = GpuAugmentation(AugmentConfig(color_p=0.5), stats)
    cpu_image, cpu_mask = augment(image.to(torch.uint8), mask, torch.Generator().manual_seed(0))
    cuda_image, cuda_mask = augment(image.to(torch.uint8).cuda(), mask.cuda(), torch.Generator().manual_seed(0))
    assert (cuda_mask.cpu() != cpu_mask).float().mean() < 1e-3  # nearest-neighbour ties may round apart
    assert ((cuda_image.cpu() - cpu_image).abs() < 1e-2).float().mean() > 0.999


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
    batch = {"image": torch.zeros(2, 3, 8, 8), "mask": torch.zeros(2, 8, 8)}
    with pytest.raises(ConfigError, match=r'call augment\(batch\["image"\], batch\["mask"\]\)'):
        GpuAugmentation()(batch)
    with pytest.raises(ConfigError, match="brightness=2"):
        AugmentConfig(brightness=2)
    with pytest.raises(ConfigError, match=r"hue=0\.7"):
        AugmentConfig(hue=0.7)
    with pytest.raises(ConfigError, match="value_range="):
        AugmentConfig(value_range=(1, 0))
