"""Self-describing checkpoints: weights in safetensors, plus a model card that says everything `predict` needs.

Loading never unpickles anything: the file is a safetensors archive whose header carries the card as JSON and a
SHA-256 digest of the weights. A missing, truncated, corrupt, modified or mismatched file raises CheckpointError.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from cmt_geo._version import __version__
from cmt_geo.errors import CheckpointError, CmtGeoError, ConfigError
from cmt_geo.models.cmt_unet import SegmentationModel
from cmt_geo.models.registry import create_model

logger = logging.getLogger(__name__)

FORMAT_NAME = "cmt-geo-checkpoint"
FORMAT_VERSION = "1"
_HEADER_LENGTH_BYTES = 8


@dataclass(frozen=True)
class ModelCard:
    """What a trained model is and how to feed it.

    Attributes:
        architecture: registry name, e.g. "cmt_unet_base".
        architecture_args: `ModelConfig` fields the model was built with (JSON values).
        class_names: one name per output class.
        class_colors: one (R, G, B) colour per class, 0-255.
        band_names: input bands in the order the model expects them, e.g. ("red", "green", "blue").
        mean: per-band normalization mean (in the raster's units).
        std: per-band normalization standard deviation.
        patch_size: training patch side in pixels.
        ground_sample_distance: training pixel size in metres, or None when unknown.
        ignore_index: label value ignored in training, or None.
        cmt_geo_version: version of cmt-geo that wrote the card.
    """

    architecture: str
    architecture_args: dict[str, Any]
    class_names: tuple[str, ...]
    class_colors: tuple[tuple[int, int, int], ...]
    band_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    patch_size: int
    ground_sample_distance: float | None = None
    ignore_index: int | None = None
    cmt_geo_version: str = field(default=__version__)

    def __post_init__(self) -> None:
        for name in ("class_names", "band_names", "mean", "std"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "class_colors", tuple(tuple(int(c) for c in color) for color in self.class_colors))
        object.__setattr__(self, "architecture_args", dict(self.architecture_args))
        if not self.class_names:
            raise ConfigError("a model card needs at least one class name")
        if len(self.class_colors) != len(self.class_names):
            raise ConfigError(
                f"{len(self.class_names)} class names but {len(self.class_colors)} colours: "
                "give one (R, G, B) per class"
            )
        for color in self.class_colors:
            if len(color) != 3 or not all(0 <= c <= 255 for c in color):
                raise ConfigError(f"class colour {color} is not an (R, G, B) triple of integers in 0..255")
        if not self.band_names:
            raise ConfigError("a model card needs at least one band name")
        for name in ("mean", "std"):
            if len(getattr(self, name)) != len(self.band_names):
                raise ConfigError(
                    f"{name} has {len(getattr(self, name))} values for {len(self.band_names)} bands: give one per band"
                )
        if any(value <= 0 for value in self.std):
            raise ConfigError(f"std must be positive for every band, got {self.std}")
        if self.patch_size < 1:
            raise ConfigError(f"patch_size must be a positive number of pixels, got {self.patch_size}")

    @property
    def num_classes(self) -> int:
        """Number of output classes."""
        return len(self.class_names)

    @property
    def in_channels(self) -> int:
        """Number of input bands."""
        return len(self.band_names)

    @classmethod
    def for_model(
        cls,
        model: SegmentationModel,
        *,
        class_names: Sequence[str],
        class_colors: Sequence[Sequence[int]],
        band_names: Sequence[str],
        mean: Sequence[float],
        std: Sequence[float],
        patch_size: int,
        ground_sample_distance: float | None = None,
        ignore_index: int | None = None,
    ) -> ModelCard:
        """A card for a model from `create_model`, its architecture and arguments filled in."""
        return cls(
            architecture=model.architecture,
            architecture_args=architecture_args(model),
            class_names=tuple(class_names),
            class_colors=tuple(tuple(color) for color in class_colors),  # type: ignore[misc]
            band_names=tuple(band_names),
            mean=tuple(mean),
            std=tuple(std),
            patch_size=patch_size,
            ground_sample_distance=ground_sample_distance,
            ignore_index=ignore_index,
        )

    def to_json(self) -> str:
        """The card as a JSON object string."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        """Parse a card written by `to_json`; raises CheckpointError when it is not a valid card."""
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise CheckpointError(f"the checkpoint's model card is not valid JSON ({error})") from None
        names = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(values, dict) or not names >= set(values) or "architecture" not in values:
            unknown = sorted(set(values) - names) if isinstance(values, dict) else values
            raise CheckpointError(
                f"the checkpoint's model card has unexpected content {unknown}; valid keys: {sorted(names)}"
            )
        try:
            return cls(**values)
        except (TypeError, ConfigError) as error:
            raise CheckpointError(f"the checkpoint's model card is invalid: {error}") from None


def architecture_args(model: SegmentationModel) -> dict[str, Any]:
    """The JSON-ready `ModelConfig` fields of a registry model (pretrained_backbone off: weights come from the file)."""
    if model.config is None or model.architecture == "custom":
        raise ConfigError("only models made by cmt_geo.models.create_model can be saved with a card")
    args = dataclasses.asdict(model.config)
    args["pretrained_backbone"] = False
    return {key: list(value) if isinstance(value, tuple) else value for key, value in args.items()}


def _weights_digest(tensors: Mapping[str, Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


def save_checkpoint(model: SegmentationModel, path: str | os.PathLike[str], card: ModelCard) -> Path:
    """Write the model's weights and its card to `path` atomically (temporary file, then rename).

    Args:
        model: a model from `create_model`.
        path: destination file (conventionally *.ckpt or *.safetensors); its folder must exist.
        card: the model card; its architecture, arguments, classes and bands must match the model.

    Returns:
        The path written.
    """
    from safetensors.torch import save_file

    destination = Path(path)
    if card.architecture != model.architecture or card.architecture_args != architecture_args(model):
        raise ConfigError(
            f"the card describes {card.architecture!r} with other arguments than the model ({model.architecture!r}); "
            "build the card with ModelCard.for_model(model, ...)"
        )
    if card.num_classes != model.num_classes or card.in_channels != model.in_channels:
        raise ConfigError(
            f"the card has {card.num_classes} classes and {card.in_channels} bands, the model "
            f"{model.num_classes} and {model.in_channels}; give one class name per output and one band name per input"
        )
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    metadata = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "card": card.to_json(),
        "weights_sha256": _weights_digest(tensors),
    }
    handle, temporary = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent)
    os.close(handle)
    try:
        save_file(tensors, temporary, metadata=metadata)
        os.replace(temporary, destination)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    logger.info("saved %s checkpoint to %s", card.architecture, destination)
    return destination


def _read_metadata(source: Path) -> dict[str, str]:
    """The metadata of a safetensors file, reading only its header."""
    try:
        with source.open("rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            prefix = stream.read(_HEADER_LENGTH_BYTES)
            if len(prefix) < _HEADER_LENGTH_BYTES:
                raise CheckpointError(f"{source} is truncated or empty ({size} bytes); save the checkpoint again")
            header_length = int.from_bytes(prefix, "little")
            if header_length > size - _HEADER_LENGTH_BYTES:
                raise CheckpointError(
                    f"{source} is truncated or not a cmt-geo checkpoint (header runs past the end of the file)"
                )
            raw_header = stream.read(header_length)
    except OSError as error:
        raise CheckpointError(f"cannot read checkpoint {source}: {error.strerror or error}") from None
    try:
        header = json.loads(raw_header)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{source} is corrupt or not a cmt-geo checkpoint (unreadable header)") from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{source} is not a cmt-geo checkpoint (no model card); write it with save_checkpoint")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{source} has checkpoint format version {metadata.get('format_version')!r}, this cmt-geo "
            f"({__version__}) reads {FORMAT_VERSION!r}; upgrade cmt-geo"
        )
    return metadata


def load_checkpoint(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[SegmentationModel, ModelCard]:
    """Rebuild a model from a checkpoint written by `save_checkpoint`.

    Args:
        path: the checkpoint file.
        device: where to put the model.

    Returns:
        (model in eval mode, its card).

    Raises:
        CheckpointError: missing, truncated, corrupt or modified file, or weights that do not fit the architecture.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    source = Path(path)
    metadata = _read_metadata(source)
    card = ModelCard.from_json(metadata.get("card", ""))
    try:
        tensors = load_file(source)
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{source} is truncated or corrupt ({error}); save the checkpoint again") from None
    if _weights_digest(tensors) != metadata.get("weights_sha256"):
        raise CheckpointError(f"{source} failed its checksum: the weights were modified or corrupted after saving")
    try:
        model = create_model(card.architecture, card.num_classes, card.in_channels, **card.architecture_args)
    except CmtGeoError as error:
        raise CheckpointError(
            f"{source} describes a model this cmt-geo ({__version__}) cannot build: {error}"
        ) from None
    missing, unexpected = _state_mismatch(model, tensors)
    if missing or unexpected:
        raise CheckpointError(
            f"{source} does not match architecture {card.architecture!r}: missing {missing[:5]}, unexpected "
            f"{unexpected[:5]} ({len(missing)} missing, {len(unexpected)} unexpected)"
        )
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as error:
        first_line = str(error).strip().splitlines()[-1].strip()
        raise CheckpointError(f"{source} does not match architecture {card.architecture!r}: {first_line}") from None
    return model.to(device).eval(), card


def _state_mismatch(model: SegmentationModel, tensors: Mapping[str, Tensor]) -> tuple[list[str], list[str]]:
    expected = set(model.state_dict())
    return sorted(expected - set(tensors)), sorted(set(tensors) - expected)
