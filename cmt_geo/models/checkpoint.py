"""Self-describing checkpoints: weights in safetensors, plus a model card that says everything `predict` needs.

Loading never unpickles anything: the file is a safetensors archive whose header carries the card as JSON and one
SHA-256 digest of the card and the weights together. The card records the architecture only; runtime settings
(scan backend, gradient checkpointing, fused attention) are chosen when loading, and pretrained backbone weights are
never fetched (the weights come from the file). A missing, truncated, corrupt, modified or mismatched file raises
CheckpointError.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import numbers
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from cmt_geo._version import __version__
from cmt_geo.errors import CheckpointError, ConfigError
from cmt_geo.models.cmt_unet import RUNTIME_FIELDS, ModelConfig, SegmentationModel
from cmt_geo.models.registry import create_model
from cmt_geo.ops.selective_scan import ScanBackend

logger = logging.getLogger(__name__)

FORMAT_NAME = "cmt-geo-checkpoint"
FORMAT_VERSION = "2"  # 2: the digest covers the card as well as the weights; the card holds no runtime settings
_HEADER_LENGTH_BYTES = 8
ARCHITECTURE_FIELDS = tuple(
    sorted(field.name for field in dataclasses.fields(ModelConfig) if field.name not in RUNTIME_FIELDS)
)
_INVALID_FILE_HINT = "the file is not a valid cmt-geo checkpoint or was written by an incompatible cmt-geo version"


class ArchitectureArgs(Mapping[str, Any]):
    """An immutable, hashable mapping of `ModelConfig` architecture fields to values (lists stored as tuples).

    Args:
        values: field name -> value; keys must be in `ARCHITECTURE_FIELDS` and values of the field's type.

    Raises:
        ConfigError: a key that is not an architecture field, or a value of the wrong type.
    """

    def __init__(self, values: Mapping[str, Any]) -> None:
        if not isinstance(values, Mapping):
            raise ConfigError(
                f"architecture_args must map ModelConfig fields to values, got {values!r}; "
                f"valid keys: {list(ARCHITECTURE_FIELDS)}"
            )
        unknown = sorted(set(values) - set(ARCHITECTURE_FIELDS), key=str)
        if unknown:
            raise ConfigError(
                f"architecture_args has key(s) {unknown} that are not architecture fields of ModelConfig (runtime "
                f"settings such as scan_backend are chosen when loading); valid keys: {list(ARCHITECTURE_FIELDS)}"
            )
        config = ModelConfig(**values)  # checks every value's type
        self._items = {name: getattr(config, name) for name in sorted(values)}

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(tuple(self._items.items()))

    def __repr__(self) -> str:
        return f"ArchitectureArgs({self._items!r})"


@dataclass(frozen=True)
class ModelCard:
    """What a trained model is and how to feed it.

    Attributes:
        architecture: registry name, e.g. "cmt_unet_base".
        architecture_args: the `ModelConfig` architecture fields the model was built with (no runtime settings).
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
    architecture_args: Mapping[str, Any]
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
        for name in ("architecture", "cmt_geo_version"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name} must be a string, got {getattr(self, name)!r}")
        for name in ("class_names", "band_names"):
            object.__setattr__(self, name, _sequence_of(name, getattr(self, name), str, "strings"))
        for name in ("mean", "std"):
            values = _sequence_of(name, getattr(self, name), float, "numbers")
            object.__setattr__(self, name, tuple(float(value) for value in values))
        colors = _sequence_of("class_colors", self.class_colors, Sequence, "(R, G, B) triples")
        object.__setattr__(
            self,
            "class_colors",
            tuple(tuple(int(c) for c in _sequence_of("class colour", color, int, "integers")) for color in colors),
        )
        object.__setattr__(self, "architecture_args", ArchitectureArgs(self.architecture_args))
        object.__setattr__(self, "patch_size", _number("patch_size", self.patch_size, int))
        for name, kind in (("ground_sample_distance", float), ("ignore_index", int)):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, _number(name, getattr(self, name), kind))
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
        if self.ground_sample_distance is not None and self.ground_sample_distance <= 0:
            raise ConfigError(
                f"ground_sample_distance must be a positive size in metres or None, got {self.ground_sample_distance}"
            )

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
        values = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        values["architecture_args"] = dict(self.architecture_args)
        return json.dumps(values, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        """Parse a card written by `to_json`; raises CheckpointError when it is not a valid card."""
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise CheckpointError(f"the model card is not valid JSON ({error}); {_INVALID_FILE_HINT}") from None
        names = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(values, dict) or not names >= set(values) or "architecture" not in values:
            unknown = sorted(set(values) - names) if isinstance(values, dict) else values
            raise CheckpointError(
                f"the model card has unexpected content {unknown} (valid keys: {sorted(names)}); {_INVALID_FILE_HINT}"
            )
        try:
            return cls(**values)
        except (TypeError, ConfigError) as error:
            raise CheckpointError(f"the model card is invalid: {error}; {_INVALID_FILE_HINT}") from None


def _sequence_of(name: str, values: object, kind: type, kind_name: str) -> tuple[Any, ...]:
    """`values` as a tuple, checking it is a sequence (not a string) whose items are all of `kind`."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise ConfigError(f"{name} must be a sequence of {kind_name}, got {values!r}")
    for value in values:
        if (isinstance(value, str | bytes) and kind is Sequence) or not _is_a(value, kind):
            raise ConfigError(f"{name} must be a sequence of {kind_name}, got {values!r}")
    return tuple(values)


def _number(name: str, value: Any, kind: type[int] | type[float]) -> int | float:
    """`value` as a plain int or float, checking its type first."""
    if not _is_a(value, kind):
        raise ConfigError(f"{name} must be {'an integer' if kind is int else 'a number'}, got {value!r}")
    return kind(value)


def _is_a(value: object, kind: type) -> bool:
    """isinstance for card values: bool is neither int nor float, an int is a float, numpy scalars count."""
    if isinstance(value, bool):
        return False
    if kind is int:
        return isinstance(value, numbers.Integral)
    if kind is float:
        return isinstance(value, numbers.Real)
    return isinstance(value, kind)


def architecture_args(model: SegmentationModel) -> ArchitectureArgs:
    """The architecture fields of a registry model's `ModelConfig` (runtime settings left out)."""
    if model.config is None or model.architecture == "custom":
        raise ConfigError("only models made by cmt_geo.models.create_model can be saved with a card")
    return ArchitectureArgs({name: getattr(model.config, name) for name in ARCHITECTURE_FIELDS})


def checkpoint_digest(card_json: str, tensors: Mapping[str, Tensor]) -> str:
    """SHA-256 (hex) over the card's JSON text, then every tensor's name, dtype, shape and bytes in name order."""
    digest = hashlib.sha256()
    digest.update(card_json.encode())
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
    card_json = card.to_json()
    metadata = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "card": card_json,
        "sha256": checkpoint_digest(card_json, tensors),
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
            f"({__version__}) reads {FORMAT_VERSION!r}; load it with the cmt-geo version that wrote it"
        )
    return metadata


def load_checkpoint(
    path: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    *,
    scan_backend: ScanBackend = "auto",
    gradient_checkpointing: bool = False,
    fused_attention: bool = True,
) -> tuple[SegmentationModel, ModelCard]:
    """Rebuild a model from a checkpoint written by `save_checkpoint` (never fetches pretrained weights).

    Args:
        path: the checkpoint file.
        device: where to put the model.
        scan_backend: selective-scan backend of the rebuilt model ("auto" picks the fastest available here).
        gradient_checkpointing: recompute activations in backward (to fine-tune with less memory).
        fused_attention: scaled_dot_product_attention instead of explicit attention math.

    Returns:
        (model in eval mode, its card).

    Raises:
        CheckpointError: missing, truncated, corrupt or modified file, an invalid card, or weights that do not fit
            the architecture.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    source = Path(path)
    metadata = _read_metadata(source)
    try:
        tensors = load_file(source)
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{source} is truncated or corrupt ({error}); save the checkpoint again") from None
    card_json = metadata.get("card", "")
    if checkpoint_digest(card_json, tensors) != metadata.get("sha256"):
        raise CheckpointError(
            f"{source} failed its checksum: the card or the weights were modified or corrupted after saving"
        )
    try:
        card = ModelCard.from_json(card_json)
    except CheckpointError as error:
        raise CheckpointError(f"{source}: {error}") from None
    runtime = {
        "pretrained_backbone": False,
        "scan_backend": scan_backend,
        "gradient_checkpointing": gradient_checkpointing,
        "fused_attention": fused_attention,
    }
    try:
        model = create_model(card.architecture, card.num_classes, card.in_channels, **card.architecture_args, **runtime)
    except Exception as error:  # any failure to build means the card does not describe a model this version knows
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"{source} describes a model this cmt-geo ({__version__}) cannot build: {message}; {_INVALID_FILE_HINT}"
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
