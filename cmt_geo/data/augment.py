"""Batch augmentation on the GPU (flips, rot90, scale jitter, colour jitter) and per-dataset normalization."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from kornia.color import rgb_to_yuv, yuv_to_rgb
from torch import Tensor, nn

from cmt_geo.card import NormalizationStats
from cmt_geo.data.base import TiledSegmentationDataset
from cmt_geo.data.labels import IGNORE_INDEX
from cmt_geo.data.samplers import GridPatchSampler
from cmt_geo.errors import ConfigError


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

    Colour jitter assumes no value range, so it works in any unit (8- or 16-bit counts, reflectance, negative
    values): a chosen image is multiplied by a brightness factor, each band's deviations from its own mean by a
    contrast factor and, for 3-band images only, its chroma (YUV's U and V) is scaled by a saturation factor and
    rotated by a hue angle. Jittered values are clamped only to `value_range`; other images keep their values exactly.

    Args:
        hflip: probability of a horizontal flip.
        vflip: probability of a vertical flip.
        rot90: rotate by a random multiple of 90 degrees (only by 180 for non-square patches).
        scale: (min, max) zoom factor; (1, 1) turns scale jitter off. Zooming out pads with ignored pixels.
        brightness: values are multiplied by a factor drawn from [1 - brightness, 1 + brightness]; in [0, 1].
        contrast: deviations from each band's mean are multiplied by a factor from [1 - contrast, 1 + contrast];
            in [0, 1].
        saturation: chroma is multiplied by a factor from [1 - saturation, 1 + saturation]; in [0, 1] (3-band
            images only).
        hue: hue turns by up to this fraction of a full turn either way; in [0, 0.5] (3-band images only).
        color_p: probability of colour jitter per image.
        value_range: (min, max) that jittered values are clamped to, e.g. (0, 4095) for 12-bit data in uint16 or
            (0, 1) for reflectance; None clamps integer input to its dtype's range (0..255 for uint8, 0..65535 for
            uint16) and never clamps float input.
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
    value_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        low, high = self.scale
        if not 0 < low <= high:
            raise ConfigError(f"scale={self.scale} must be (min, max) with 0 < min <= max, e.g. (0.75, 1.25)")
        for name in ("hflip", "vflip", "color_p", "brightness", "contrast", "saturation"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be in [0, 1]")
        if not 0 <= self.hue <= 0.5:
            raise ConfigError(f"hue={self.hue} is a fraction of a full turn; use a value in [0, 0.5]")
        if self.value_range is not None and not self.value_range[0] < self.value_range[1]:
            raise ConfigError(f"value_range={self.value_range} must be (min, max) with min < max, e.g. (0, 4095)")


class GpuAugmentation(nn.Module):
    """Augment a batch where it lives (GPU or CPU), masks following the image, then normalize.

    Colour jitter runs first, in the input's own units (see `AugmentConfig`); flips, rot90 and scale jitter move
    image and mask together (the mask by nearest neighbour, so ignored pixels stay ignored) and never clamp: flips
    and rot90 keep values exactly. Pixels shifted in from outside the patch are ignored in the mask and 0 after
    normalization.

    Call it on the batch's tensors, e.g. `image, mask = augment(batch["image"].cuda(), batch["mask"].cuda())`.

    Args:
        config: the augmentations.
        stats: normalization applied last; None leaves values in raw units.
    """

    def __init__(self, config: AugmentConfig | None = None, stats: NormalizationStats | None = None) -> None:
        super().__init__()
        self.config = config or AugmentConfig()
        self.stats = stats

    def forward(
        self, image: Tensor, mask: Tensor | None = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Augment (B, C, H, W) images and (B, H, W) masks, in any dtype (compact samples included).

        Args:
            image: raw pixel values.
            mask: class indices with `IGNORE_INDEX`; required (None only raises the error that shows the call).
            generator: a CPU generator that seeds every random choice; None uses torch's global one.

        Returns:
            The augmented (and normalized) float32 image and the int64 mask.

        Raises:
            ConfigError: a batch dict instead of tensors, no mask, or shapes that do not match.
        """
        if not isinstance(image, Tensor) or mask is None:
            raise ConfigError(
                f"GpuAugmentation takes the image and mask tensors, got {type(image).__name__} and "
                f'{type(mask).__name__}; call augment(batch["image"], batch["mask"])'
            )
        if image.ndim != 4 or mask.shape != (image.shape[0], *image.shape[-2:]):
            raise ConfigError(
                f"expected image (B, C, H, W) and mask (B, H, W), got {tuple(image.shape)} and {tuple(mask.shape)}"
            )
        c = self.config
        value_range = c.value_range
        if value_range is None and not image.dtype.is_floating_point:
            value_range = (torch.iinfo(image.dtype).min, torch.iinfo(image.dtype).max)
        image = self._color(image.float(), value_range, generator)
        mask = mask.long()
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

    def _color(
        self, image: Tensor, value_range: tuple[float, float] | None, generator: torch.Generator | None
    ) -> Tensor:
        """Jitter a random `color_p` share of (B, C, H, W) float images; the others are returned untouched."""
        c = self.config
        batch = image.shape[0]
        chosen = torch.rand(batch, generator=generator) < c.color_p
        if not chosen.any():
            return image

        def spread(strength: float) -> Tensor:
            """(B, 1, 1, 1) values drawn uniformly from [-strength, strength]."""
            return ((torch.rand(batch, generator=generator) * 2 - 1) * strength).to(image).view(-1, 1, 1, 1)

        jittered = image * (1 + spread(c.brightness))
        mean = jittered.mean((-2, -1), keepdim=True)
        jittered = (jittered - mean) * (1 + spread(c.contrast)) + mean
        if image.shape[1] == 3:
            luma, u, v = rgb_to_yuv(jittered).split(1, dim=1)
            angle, saturation = spread(c.hue) * 2 * math.pi, 1 + spread(c.saturation)
            cos, sin = saturation * angle.cos(), saturation * angle.sin()
            jittered = yuv_to_rgb(torch.cat([luma, cos * u - sin * v, sin * u + cos * v], dim=1))
        if value_range is not None:
            jittered = jittered.clamp(*value_range)
        return torch.where(chosen.to(image.device).view(-1, 1, 1, 1), jittered, image)

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
