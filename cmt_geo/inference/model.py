"""A model ready to predict tiles: device, normalization of raw pixels, test-time augmentation."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from cmt_geo.card import ModelCard
from cmt_geo.errors import BackendUnavailableError
from cmt_geo.inference.options import TestTimeAugmentation

logger = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """A torch device for "auto" (CUDA, else MPS, else CPU), "cpu", "mps", "cuda" or "cuda:N".

    Raises:
        BackendUnavailableError: the device is not available here.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailableError(f"device {name!r} was asked for but CUDA is not available; use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise BackendUnavailableError(f"device {name!r} was asked for but MPS is not available; use --device cpu")
    return device


def _views(tta: TestTimeAugmentation) -> list[tuple[int, bool]]:
    """(quarter turns, horizontal flip) of every view a test-time augmentation averages over."""
    if tta == "none":
        return [(0, False)]
    if tta == "flip":
        return [(0, False), (0, True), (2, False), (2, True)]  # identity, h-flip, 180° (h+v flip), v-flip
    return [(turns, flip) for turns in range(4) for flip in (False, True)]


class TilePredictor:
    """Class logits of batches of raw tiles (their softmax over classes is the class probability).

    Args:
        model: maps (B, C, H, W) normalized images to (B, K, H, W) logits.
        card: the model's card (normalization, classes).
        device: where to run.
        tta: test-time augmentation.
        compiled_batch: run the model compiled (`compile_for_inference`) on batches of exactly this many tiles,
            smaller batches padded (each new input shape would compile again); None: run it as it is.
    """

    def __init__(
        self,
        model: nn.Module,
        card: ModelCard,
        device: torch.device,
        tta: TestTimeAugmentation,
        *,
        compiled_batch: int | None = None,
    ) -> None:
        self.model = model.to(device).eval().to(memory_format=torch.channels_last)
        if compiled_batch is not None:
            from cmt_geo.models import compile_for_inference

            logger.info("compiling the model before the first batch (minutes on a CPU, faster batches then)")
            self.model = compile_for_inference(self.model)
        self.compiled_batch = compiled_batch
        self.card = card
        self.device = device
        self.views = _views(tta)
        stats = card.normalization
        self.scale = 1 / np.array(stats.std, dtype=np.float32)
        self.shift = -np.array(stats.mean, dtype=np.float32) * self.scale

    def prepare(self, raw: npt.NDArray[Any], valid: npt.NDArray[np.bool_] | None, out: npt.NDArray[np.float32]) -> None:
        """Write the model input of a (C, H, W) raw tile into `out` (H, W, C), channels last: standardized float32,
        pixels not `valid` at 0 (the band means). Releases the GIL, so a reader thread can do it while the model
        runs."""
        from cmt_geo.inference._kernels import standardize

        standardize(raw, self.scale, self.shift, np.empty((0, 0), bool) if valid is None else valid, out)

    @torch.inference_mode()
    def __call__(self, images: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """(B, K, H, W) float32 class logits of (B, H, W, C) tiles from `prepare`: the model's, or with test-time
        augmentation the log of the views' mean probability."""
        count = len(images)
        if self.compiled_batch is not None and count < self.compiled_batch:
            padding = np.zeros((self.compiled_batch - count, *images.shape[1:]), np.float32)
            images = np.concatenate((images, padding))
        # channels-last: convolutions run several times faster on CPU (oneDNN) and with tensor cores
        image = torch.from_numpy(images).to(self.device).permute(0, 3, 1, 2)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda")
        with autocast:
            if len(self.views) == 1:
                logits = self.model(image).float()
            else:
                total = torch.zeros(())
                for turns, flip in self.views:
                    view = torch.rot90(image, turns, dims=(-2, -1)) if turns else image
                    view = view.flip(-1) if flip else view
                    view = view.contiguous(memory_format=torch.channels_last)  # one layout: compiled once
                    probabilities = self.model(view).float().softmax(dim=1)
                    probabilities = probabilities.flip(-1) if flip else probabilities
                    total = total + (torch.rot90(probabilities, -turns, dims=(-2, -1)) if turns else probabilities)
                logits = (total / len(self.views)).log()
        return logits[:count].cpu().numpy()  # in the model's memory layout: the blending reads any
