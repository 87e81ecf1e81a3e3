"""Batch augmentation on the GPU (flips, rot90, scale jitter, colour jitter) and per-dataset normalization."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import kornia.augmentation as K
import kornia.enhance
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cmt_geo.data.base import TiledSegmentationDataset
from cmt_geo.data.labels import IGNORE_INDEX
from cmt_geo.data.samplers import GridPatchSampler
from cmt_geo.errors import ConfigError


@dataclass(frozen=True)
class NormalizationStats:
    """Per-band mean and standard deviation, stored in the checkpoint card so prediction normalizes the same way.

    Args:
        mean: per-band mean of raw pixel values.
        std: per-band standard deviation of raw pixel values.
        bands: band names, in order.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    bands: tuple[str, ...]

    def __post_init__(self) -> None:
        if not len(self.mean) == len(self.std) == len(self.bands):
            raise ConfigError(
                f"normalization has {len(self.mean)} means, {len(self.std)} stds and {len(self.bands)} bands; "
                "give one of each per band"
            )
        if any(s <= 0 for s in self.std):
            raise ConfigError(f"normalization std {self.std} must be positive for every band")

    def to_dict(self) -> dict[str, list[float] | list[str]]:
        """A JSON- and YAML-friendly form for the checkpoint card."""
        return {key: list(value) for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NormalizationStats:
        """Read the form `to_dict` writes.

        Raises:
            ConfigError: a missing or unknown key.
        """
        names = {f.name for f in fields(cls)}
        if set(data) != names:
            raise ConfigError(f"normalization keys {sorted(data)} must be exactly {sorted(names)}")
        return cls(**{key: tuple(data[key]) for key in names})

    def normalize(self, image: Tensor) -> Tensor:
        """(B, C, H, W) raw values → standardized values."""
        if image.shape[-3] != len(self.mean):
            raise ConfigError(
                f"image has {image.shape[-3]} bands but normalization has {len(self.mean)} ({self.bands})"
            )
        mean = torch.tensor(self.mean, dtype=image.dtype, device=image.device).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=image.dtype, device=image.device).view(-1, 1, 1)
        return (image - mean) / std


def estimate_normalization(
    samples: Iterable[Mapping[str, Tensor]], bands: Iterable[str], max_samples: int = 256
) -> NormalizationStats:
    """Per-band mean and std over the labelled pixels of up to `max_samples` samples (all pixels where none is).

    Args:
        samples: samples with "image" (C, H, W) and "mask" (H, W), e.g. a dataset read through a grid sampler.
        bands: band names.
        max_samples: stop after this many samples.

    Raises:
        ConfigError: no sample at all.
    """
    sums: list[Tensor] = []
    squares: list[Tensor] = []
    count = 0
    for sample in itertools.islice(samples, max_samples):
        image = sample["image"].double().flatten(1)
        valid = (sample["mask"] != IGNORE_INDEX).flatten()
        pixels = image[:, valid] if valid.any() else image
        sums.append(pixels.sum(1))
        squares.append((pixels**2).sum(1))
        count += pixels.shape[1]
    if not count:
        raise ConfigError("no samples to estimate normalization from; check the dataset and sampler")
    mean = torch.stack(sums).sum(0) / count
    std = (torch.stack(squares).sum(0) / count - mean**2).clamp_min(1e-12).sqrt()
    return NormalizationStats(tuple(mean.tolist()), tuple(std.clamp_min(1e-6).tolist()), tuple(bands))


def dataset_normalization(
    dataset: TiledSegmentationDataset, patch: int = 256, max_samples: int = 256
) -> NormalizationStats:
    """A dataset's normalization statistics, from up to `max_samples` grid patches spread over all its tiles."""
    windows = list(GridPatchSampler(dataset, patch, rank=0, world_size=1))
    spread = windows[:: max(1, len(windows) // max_samples)]
    return estimate_normalization((dataset[window] for window in spread), dataset.band_names, max_samples)


@dataclass(frozen=True)
class AugmentConfig:
    """Which augmentations to apply, and how strongly.

    Args:
        hflip: probability of a horizontal flip.
        vflip: probability of a vertical flip.
        rot90: rotate by a random multiple of 90 degrees (only by 180 for non-square patches).
        scale: (min, max) zoom factor; (1, 1) turns scale jitter off. Zooming out pads with ignored pixels.
        brightness: colour jitter brightness, as kornia's `ColorJiggle` takes it.
        contrast: colour jitter contrast.
        saturation: colour jitter saturation (3-band images only).
        hue: colour jitter hue (3-band images only).
        color_p: probability of colour jitter per image.
        value_range: raw value of full brightness (255 for 8-bit imagery).
    """

    hflip: float = 0.5
    vflip: float = 0.5
    rot90: bool = True
    scale: tuple[float, float] = (0.75, 1.25)
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.0
    color_p: float = 0.8
    value_range: float = 255.0

    def __post_init__(self) -> None:
        low, high = self.scale
        if not 0 < low <= high:
            raise ConfigError(f"scale={self.scale} must be (min, max) with 0 < min <= max, e.g. (0.75, 1.25)")
        for name in ("hflip", "vflip", "color_p"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{name}={getattr(self, name)} is a probability; use a value in [0, 1]")


class GpuAugmentation(nn.Module):
    """Augment a batch where it lives (GPU or CPU), masks following the image, then normalize.

    Colour jitter runs first, on values scaled to [0, 1]; flips, rot90 and scale jitter move image and mask
    together (the mask by nearest neighbour, so ignored pixels stay ignored); pixels shifted in from outside the
    patch are ignored in the mask and 0 after normalization.

    Args:
        config: the augmentations.
        stats: normalization applied last; None leaves values in raw units.
    """

    def __init__(self, config: AugmentConfig | None = None, stats: NormalizationStats | None = None) -> None:
        super().__init__()
        self.config = config or AugmentConfig()
        self.stats = stats
        c = self.config
        self.rgb_jitter = K.ColorJiggle(c.brightness, c.contrast, c.saturation, c.hue, p=c.color_p)

    def forward(self, image: Tensor, mask: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Augment (B, C, H, W) images and (B, H, W) masks, in any dtype (compact samples included).

        Args:
            image: raw pixel values.
            mask: class indices with `IGNORE_INDEX`.
            generator: seeds the geometric choices (colour jitter uses torch's global generator, as kornia does).

        Returns:
            The augmented (and normalized) float32 image and the int64 mask.
        """
        if image.ndim != 4 or mask.shape != (image.shape[0], *image.shape[-2:]):
            raise ConfigError(
                f"expected image (B, C, H, W) and mask (B, H, W), got {tuple(image.shape)} and {tuple(mask.shape)}"
            )
        c = self.config
        image, mask = image.float(), mask.long()
        image = self._color(image / c.value_range) * c.value_range
        batch, device = image.shape[0], image.device

        def draw(probability: float) -> Tensor:
            return (torch.rand(batch, generator=generator) < probability).to(device)

        for flags, dim in ((draw(c.hflip), -1), (draw(c.vflip), -2)):
            image = torch.where(flags.view(-1, 1, 1, 1), image.flip(dim), image)
            mask = torch.where(flags.view(-1, 1, 1), mask.flip(dim), mask)
        if c.rot90:
            square = image.shape[-1] == image.shape[-2]
            turns = torch.randint(0, 4, (batch,), generator=generator) if square else 2 * draw(0.5).long().cpu()
            image, mask = image.clone(), mask.clone()
            for k in (1, 2, 3):
                chosen = (turns == k).to(device)
                if chosen.any():
                    image[chosen] = torch.rot90(image[chosen], k, dims=(-2, -1))
                    mask[chosen] = torch.rot90(mask[chosen], k, dims=(-2, -1))
        inside = torch.ones_like(mask, dtype=torch.bool)
        if c.scale != (1.0, 1.0):
            image, mask, inside = self._scale(image, mask, generator)
        if self.stats is not None:
            image = self.stats.normalize(image) * inside.unsqueeze(1)
        return image, mask

    def _color(self, image: Tensor) -> Tensor:
        if image.shape[1] == 3:
            return self.rgb_jitter(image.clamp(0, 1))
        c = self.config
        batch = image.shape[0]
        chosen = (torch.rand(batch, device=image.device) < c.color_p).to(image.dtype)
        brightness = (torch.rand(batch, device=image.device) * 2 - 1) * c.brightness * chosen
        contrast = 1 + (torch.rand(batch, device=image.device) * 2 - 1) * c.contrast * chosen
        image = kornia.enhance.adjust_brightness(image.clamp(0, 1), brightness)
        return kornia.enhance.adjust_contrast(image, contrast)

    def _scale(self, image: Tensor, mask: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor, Tensor]:
        low, high = self.config.scale
        batch = image.shape[0]
        zoom = (torch.rand(batch, generator=generator) * (high - low) + low).to(image.device, image.dtype)
        theta = torch.zeros(batch, 2, 3, device=image.device, dtype=image.dtype)
        theta[:, 0, 0] = theta[:, 1, 1] = 1 / zoom
        grid = F.affine_grid(theta, list(image.shape), align_corners=False)
        image = F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        shifted = F.grid_sample((mask + 1).unsqueeze(1).to(image.dtype), grid, mode="nearest", align_corners=False)
        shifted = shifted.squeeze(1).round().long()
        inside = shifted > 0
        return image, torch.where(inside, shifted - 1, IGNORE_INDEX), inside
