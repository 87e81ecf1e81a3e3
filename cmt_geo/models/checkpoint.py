"""Self-describing checkpoints: weights in safetensors, plus a model card that says everything `predict` needs.

Loading never unpickles anything: the file is a safetensors archive whose header carries the card as JSON and one
SHA-256 digest of the card and the weights together (see `cmt_geo.card`). The card records the architecture only;
`RuntimeOptions` (scan backend, gradient checkpointing, fused attention) are chosen when loading, and pretrained
backbone weights are never fetched (the weights come from the file). A missing, truncated, corrupt, modified or
mismatched file raises CheckpointError.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from cmt_geo._version import __version__
from cmt_geo.card import INVALID_CHECKPOINT_HINT, ModelCard, checkpoint_metadata, read_checkpoint_metadata
from cmt_geo.errors import CheckpointError, ConfigError
from cmt_geo.io.outputs import atomic_output
from cmt_geo.models.registry import create_model
from cmt_geo.models.segmentation import ARCHITECTURE_OPTIONS, RuntimeOptions, SegmentationModel
from cmt_geo.ops.selective_scan import ScanBackend
from cmt_geo.validation import reject_unknown

logger = logging.getLogger(__name__)


def checkpoint_digest(card_json: str, tensors: Mapping[str, Tensor]) -> str:
    """SHA-256 (hex) over the card's JSON text, then every tensor's name, dtype, shape and bytes in name order."""
    digest = hashlib.sha256()
    digest.update(card_json.encode())
    for name in sorted(tensors):
        tensor = tensors[name].contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


def save_checkpoint(
    model: SegmentationModel, path: str | os.PathLike[str], card: ModelCard, *, overwrite: bool = False
) -> Path:
    """Write the model's weights and its card to `path` atomically (a staging file, renamed when complete).

    Args:
        model: a model from `create_model`.
        path: destination file (conventionally *.ckpt or *.safetensors); missing folders are created.
        card: the model card; its architecture, options, classes and bands must match the model.
        overwrite: replace an existing file.

    Returns:
        The path written.

    Raises:
        ConfigError: the card does not describe the model.
        OutputExistsError: the file exists and `overwrite` is False.
        OutputNotWritableError: the folder cannot be created or written.
    """
    from safetensors.torch import save_file

    if card.architecture != model.architecture or card.architecture_args != model.architecture_args():
        raise ConfigError(
            f"the card describes {card.architecture!r} with other options than the model ({model.architecture!r}); "
            "build the card with ModelCard.for_model(model, ...)"
        )
    if card.num_classes != model.num_classes or card.in_channels != model.in_channels:
        raise ConfigError(
            f"the card has {card.num_classes} classes and {card.in_channels} bands, the model "
            f"{model.num_classes} and {model.in_channels}; give one class name per output and one band per input"
        )
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    card_json = card.to_json()
    metadata = checkpoint_metadata(card_json, checkpoint_digest(card_json, tensors))
    with atomic_output(path, overwrite=overwrite) as staging:
        save_file(tensors, staging, metadata=metadata)
    logger.info("saved %s checkpoint to %s", card.architecture, path)
    return Path(path)


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
        ConfigError: an invalid runtime option (checked before the file is read).
        CheckpointError: missing, truncated, corrupt or modified file, an invalid card, or weights that do not fit
            the architecture.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    runtime = RuntimeOptions(
        scan_backend=scan_backend, gradient_checkpointing=gradient_checkpointing, fused_attention=fused_attention
    )
    source = Path(path)
    metadata = read_checkpoint_metadata(source)
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
    try:
        reject_unknown("architecture option(s)", card.architecture_args, ARCHITECTURE_OPTIONS)
        options = {**card.architecture_args, **dataclasses.asdict(runtime)}
        model = create_model(card.architecture, card.num_classes, card.in_channels, **options)
    except Exception as error:  # any failure to build means the card does not describe a model this version knows
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"{source} describes a model this cmt-geo ({__version__}) cannot build: {message}; "
            f"{INVALID_CHECKPOINT_HINT}"
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
