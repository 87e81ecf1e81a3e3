"""The model card and its normalization statistics, and reading a checkpoint's card without torch.

A checkpoint is a safetensors file whose header metadata holds the format name and version, the card as JSON and a
SHA-256 digest; `read_card` reads the card from the header alone (QGIS, `cmtgeo info`, a quick look), while
`cmt_geo.models.load_checkpoint` also verifies the digest and rebuilds the model. This module imports no torch.
"""

from __future__ import annotations

import colorsys
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from cmt_geo._version import __version__
from cmt_geo.errors import CheckpointError, ConfigError
from cmt_geo.validation import is_integer, is_number, reject_unknown, validate_fields

if TYPE_CHECKING:
    from torch import Tensor

IGNORE_INDEX = 255
"""Label value of pixels without a class (no-data, eroded boundaries, outside the tiles)."""

FORMAT_NAME = "cmt-geo-checkpoint"
FORMAT_VERSION = "3"  # 3: normalization nested in the card; 2: the digest covers the card as well as the weights
_HEADER_LENGTH_BYTES = 8
INVALID_CHECKPOINT_HINT = "the file is not a valid cmt-geo checkpoint or was written by an incompatible cmt-geo version"


def default_colors(count: int) -> tuple[tuple[int, int, int], ...]:
    """`count` distinct (R, G, B) colours spread around the hue circle, for classes given without colours."""
    colors = []
    for index in range(count):
        red, green, blue = colorsys.hsv_to_rgb(index / max(count, 1), 0.75, 0.95)
        colors.append((round(red * 255), round(green * 255), round(blue * 255)))
    return tuple(colors)


@dataclass(frozen=True)
class NormalizationStats:
    """Per-band mean and standard deviation, stored in the checkpoint card so prediction normalizes the same way.

    Args:
        mean: per-band mean of raw pixel values.
        std: per-band standard deviation of raw pixel values (positive).
        bands: band names, in order.

    Raises:
        ConfigError: a value that is not a finite number, a std that is not positive, or lengths that differ.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    bands: tuple[str, ...]

    def __post_init__(self) -> None:
        validate_fields(self, "normalization")
        if not len(self.mean) == len(self.std) == len(self.bands) > 0:
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
            ConfigError: not a mapping, a missing or unknown key, or an invalid value.
        """
        names = [f.name for f in fields(cls)]
        if not isinstance(data, Mapping) or set(data) != set(names):
            given = sorted(data) if isinstance(data, Mapping) else data
            raise ConfigError(
                f"normalization keys {given!r} must be exactly {names}, each a list with one value per band"
            )
        return cls(**data)

    def normalize(self, image: Tensor) -> Tensor:
        """(B, C, H, W) or (C, H, W) raw values -> standardized float values (integer images become float32)."""
        import torch

        if image.ndim < 3 or image.shape[-3] != len(self.mean):
            raise ConfigError(
                f"image of shape {tuple(image.shape)} has no {len(self.mean)} bands {self.bands} at dimension -3; "
                "give (B, C, H, W) or (C, H, W) with the card's bands"
            )
        if not image.is_floating_point():
            image = image.float()
        mean = torch.tensor(self.mean, dtype=image.dtype, device=image.device).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=image.dtype, device=image.device).view(-1, 1, 1)
        return (image - mean) / std


class ArchitectureArgs(Mapping[str, Any]):
    """An immutable, hashable mapping of architecture option names to JSON values (lists are stored as tuples).

    The card cannot know `ModelConfig` (it needs torch): the models layer checks names and values against it when
    it saves, loads or describes a model.

    Args:
        values: option name -> number, string, bool, None, or a (nested) list of them.

    Raises:
        ConfigError: not a mapping, a key that is not a string, or a value that is not JSON.
    """

    def __init__(self, values: Mapping[str, Any]) -> None:
        if not isinstance(values, Mapping) or not all(isinstance(key, str) for key in values):
            raise ConfigError(
                f"architecture_args must map option names to values, got {values!r}; "
                "build the card with ModelCard.for_model(model, ...)"
            )
        self._items = {key: _json_value(f"architecture_args[{key!r}]", values[key]) for key in sorted(values)}

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


def _json_value(name: str, value: Any) -> Any:
    """`value` as an immutable JSON value: None, bool, str, int, finite float or a tuple of them."""
    if value is None or isinstance(value, bool | str):
        return value
    if is_integer(value):
        return int(value)
    if is_number(value):
        return float(value)
    if isinstance(value, list | tuple):
        return tuple(_json_value(name, item) for item in value)
    raise ConfigError(f"{name} must be a number, string, true/false, null or a list of them, got {value!r}")


class DescribedModel(Protocol):
    """What `ModelCard.for_model` reads from a model: a `SegmentationModel` made by `create_model`."""

    architecture: str

    def architecture_args(self) -> Mapping[str, Any]:
        """The architecture options the model was built with."""
        ...


@dataclass(frozen=True)
class ModelCard:
    """What a trained model is and how to feed it.

    Attributes:
        architecture: registry name, e.g. "cmt_unet_base".
        architecture_args: the architecture options the model was built with (no runtime options).
        class_names: one distinct name per output class.
        class_colors: one (R, G, B) colour per class, 0-255.
        normalization: band names in the order the model expects them, and their mean and std.
        patch_size: training patch side in pixels.
        ground_sample_distance: training pixel size in metres, or None when unknown.
        ignore_index: label value ignored in training (not a class index), or None.
        cmt_geo_version: version of cmt-geo that wrote the card.

    Raises:
        ConfigError: a value of the wrong type or out of range, repeated class names, colours that do not match
            the classes, or an ignore_index that is a class index.
    """

    architecture: str
    architecture_args: ArchitectureArgs
    class_names: tuple[str, ...]
    class_colors: tuple[tuple[int, int, int], ...]
    normalization: NormalizationStats
    patch_size: int
    ground_sample_distance: float | None = None
    ignore_index: int | None = None
    cmt_geo_version: str = field(default=__version__)

    def __post_init__(self) -> None:
        if not isinstance(self.architecture_args, ArchitectureArgs):
            object.__setattr__(self, "architecture_args", ArchitectureArgs(self.architecture_args))
        validate_fields(self, "model card field")
        names = self.class_names
        if not names:
            raise ConfigError("a model card needs at least one class name")
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ConfigError(f"class names {repeated} appear more than once in {names}; give each class its own name")
        if len(self.class_colors) != len(names):
            raise ConfigError(
                f"{len(names)} class names but {len(self.class_colors)} colours: give one (R, G, B) per class"
            )
        for color in self.class_colors:
            if not all(0 <= c <= 255 for c in color):
                raise ConfigError(f"class colour {color} is not an (R, G, B) triple of integers in 0..255")
        if self.ignore_index is not None and 0 <= self.ignore_index < len(names):
            raise ConfigError(
                f"ignore_index {self.ignore_index} is the index of class {names[self.ignore_index]!r}; use a value "
                f"outside 0..{len(names) - 1}, e.g. {IGNORE_INDEX}, or None"
            )
        if self.patch_size < 1:
            raise ConfigError(f"patch_size must be a positive number of pixels, got {self.patch_size}")
        if self.ground_sample_distance is not None and self.ground_sample_distance <= 0:
            raise ConfigError(
                f"ground_sample_distance must be a positive size in metres or None, got {self.ground_sample_distance}"
            )

    @property
    def band_names(self) -> tuple[str, ...]:
        """Input bands in the order the model expects them."""
        return self.normalization.bands

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
        model: DescribedModel,
        *,
        class_names: Sequence[str],
        class_colors: Sequence[tuple[int, int, int]],
        normalization: NormalizationStats,
        patch_size: int,
        ground_sample_distance: float | None = None,
        ignore_index: int | None = None,
    ) -> ModelCard:
        """A card for a model from `cmt_geo.models.create_model`, its architecture and options filled in."""
        return cls(
            architecture=model.architecture,
            architecture_args=ArchitectureArgs(model.architecture_args()),
            class_names=tuple(class_names),
            class_colors=tuple(class_colors),
            normalization=normalization,
            patch_size=patch_size,
            ground_sample_distance=ground_sample_distance,
            ignore_index=ignore_index,
        )

    def to_json(self) -> str:
        """The card as a JSON object string."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["architecture_args"] = dict(self.architecture_args)
        values["normalization"] = self.normalization.to_dict()
        return json.dumps(values, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        """Parse a card written by `to_json`.

        Raises:
            CheckpointError: the text is not a valid card.
        """
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise CheckpointError(f"the model card is not valid JSON ({error}); {INVALID_CHECKPOINT_HINT}") from None
        if not isinstance(values, dict):
            raise CheckpointError(f"the model card is {values!r}, not a JSON object; {INVALID_CHECKPOINT_HINT}")
        try:
            reject_unknown("model card field(s)", values, [f.name for f in fields(cls)])
            values["normalization"] = NormalizationStats.from_dict(values.get("normalization", {}))
            return cls(**values)
        except (TypeError, ConfigError) as error:
            raise CheckpointError(f"the model card is invalid: {error}; {INVALID_CHECKPOINT_HINT}") from None


def checkpoint_metadata(card_json: str, digest: str) -> dict[str, str]:
    """The safetensors header metadata of a checkpoint: format name and version, the card, the digest."""
    return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "card": card_json, "sha256": digest}


def read_checkpoint_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The header metadata of a checkpoint, reading only the safetensors header.

    Raises:
        CheckpointError: a missing, unreadable or truncated file, no cmt-geo header, or another format version.
    """
    source = Path(path)
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
        raise CheckpointError(
            f"{source} is not a cmt-geo checkpoint (no model card); write it with cmt_geo.models.save_checkpoint"
        )
    if metadata.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{source} has checkpoint format version {metadata.get('format_version')!r}, this cmt-geo "
            f"({__version__}) reads {FORMAT_VERSION!r}; load it with the cmt-geo version that wrote it"
        )
    return metadata


def read_card(path: str | os.PathLike[str]) -> ModelCard:
    """The model card of a checkpoint, from its header alone (no torch; the digest is checked by `load_checkpoint`).

    Raises:
        CheckpointError: the file is not a readable cmt-geo checkpoint of this format version, or its card is invalid.
    """
    metadata = read_checkpoint_metadata(path)
    try:
        return ModelCard.from_json(metadata.get("card", ""))
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}") from None
