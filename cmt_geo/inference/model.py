"""A model ready to predict tiles: device, normalization of raw pixels, test-time augmentation, softmax."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn

from cmt_geo.card import ModelCard
from cmt_geo.errors import BackendUnavailableError
from cmt_geo.inference.options import TestTimeAugmentation


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
    """Class probabilities of batches of raw tiles.

    Args:
        model: maps (B, C, H, W) normalized images to (B, K, H, W) logits.
        card: the model's card (normalization, classes).
        device: where to run.
        tta: test-time augmentation.
    """

    def __init__(self, model: nn.Module, card: ModelCard, device: torch.device, tta: TestTimeAugmentation) -> None:
        self.model = model.to(device).eval()
        self.card = card
        self.device = device
        self.views = _views(tta)
        stats = card.normalization
        self.mean = torch.tensor(stats.mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(stats.std, dtype=torch.float32, device=device).view(1, -1, 1, 1)

    @torch.inference_mode()
    def __call__(self, tiles: npt.NDArray[np.float32], valid: npt.NDArray[np.bool_]) -> npt.NDArray[np.float32]:
        """(B, K, H, W) float32 probabilities of (B, C, H, W) raw tiles; invalid pixels are fed as the band means."""
        image = torch.from_numpy(tiles).to(self.device, non_blocking=True)
        mask = torch.from_numpy(valid).to(self.device).unsqueeze(1)
        image = torch.where(mask, (image - self.mean) / self.std, 0.0)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda")
        total: Tensor | None = None
        with autocast:
            for turns, flip in self.views:
                view = torch.rot90(image, turns, dims=(-2, -1)) if turns else image
                view = view.flip(-1) if flip else view
                probabilities = self.model(view).float().softmax(dim=1)
                probabilities = probabilities.flip(-1) if flip else probabilities
                probabilities = torch.rot90(probabilities, -turns, dims=(-2, -1)) if turns else probabilities
                total = probabilities if total is None else total + probabilities
        assert total is not None
        return (total / len(self.views)).cpu().numpy()
