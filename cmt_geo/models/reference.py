"""Weights of the public reference implementation of CMT-UNet (XUE-YYC/CMT-UNet) as cmt-geo checkpoints.

The reference's training code saves `model.state_dict()` of its `CMT_UNet` module, sometimes wrapped (a dict
holding it under "state_dict" or "model", keys prefixed by "net." or "module."). Its keys map one to one onto
`cmt_unet_base` (same trunk, Mamba branch, fusion blocks and decoder); besides, it stores
- the ResNet trunk twice: under `backbone.*` and again as `conv1`, `bn1`, `layers.0-3` (the same tensors), and
- constants our modules rebuild instead of storing: the Haar filters of every WTConv2d (`wt_filter`, `iwt_filter`)
  and of the Mamba downsampling (`wt.h0_col`, ...), and the windows' `relative_position_index`.
Duplicates must agree and constants must equal what we compute; every other key must map onto a weight of ours of
the same shape. Anything else is an error that lists the keys: nothing is dropped silently.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import pickle
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from cmt_geo.card import ModelCard, NormalizationStats, default_colors
from cmt_geo.errors import CheckpointError, ConfigError
from cmt_geo.layers.attention import relative_position_index
from cmt_geo.models.checkpoint import save_checkpoint
from cmt_geo.models.registry import create_model, list_models, preset_config
from cmt_geo.models.segmentation import ModelConfig, SegmentationModel
from cmt_geo.ops.wavelet import wavelet_filter_bank

logger = logging.getLogger(__name__)

#: The reference's last weight (its classifier); where it sits in a saved dict tells the key prefix.
ANCHOR_KEY = "decoder.segmentation_head.2.0.weight"
#: Keys of a saved dict that may hold the state dict (Lightning, plain training loops).
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "net")
#: Normalization of the reference's README: 8-bit pixels scaled to 0-1, no mean subtracted.
REFERENCE_SCALE = 255.0
#: Patch side the reference's README trains on.
REFERENCE_PATCH_SIZE = 256
#: ResNet variants by (bottleneck blocks, blocks per stage).
_RESNETS: dict[tuple[bool, tuple[int, ...]], str] = {
    (False, (2, 2, 2, 2)): "resnet18",
    (False, (3, 4, 6, 3)): "resnet34",
    (True, (3, 4, 6, 3)): "resnet50",
    (True, (3, 4, 23, 3)): "resnet101",
    (True, (3, 8, 36, 3)): "resnet152",
}
_DECODER_BLOCKS = {"b4": 0, "b3": 1, "b2": 2}
_DECODER_FUSIONS = {"p3": "fusions.0", "p2": "fusions.1", "p1": "refine"}
_LISTED = 12  # keys named per problem in an error message


def _module_rules() -> list[tuple[re.Pattern[str], str]]:
    """Reference module path -> ours, tried in order on the start of each key (the first match wins)."""
    rules = [
        (r"backbone\.", "encoder.resnet.body."),
        (r"stem\.", "encoder.mamba.stem."),
        (r"vssm_encoder\.patch_embed\.proj\.", "encoder.mamba.patch_embed."),
        (r"vssm_encoder\.patch_embed\.norm\.", "encoder.mamba.patch_norm."),
        (r"vssm_encoder\.layers\.(\d+)\.blocks\.(\d+)\.ln_1\.", r"encoder.mamba.stages.\1.\2.norm."),
        (r"vssm_encoder\.layers\.(\d+)\.blocks\.(\d+)\.self_attention\.", r"encoder.mamba.stages.\1.\2.mixer."),
        (r"vssm_encoder\.downsamples\.(\d+)\.(norm|reduction)\.", r"encoder.mamba.downsamples.\1.\2."),
        (r"Fuse\.(\d+)\.normx\.", r"encoder.fusions.\1.norm1."),
        (r"Fuse\.(\d+)\.normy\.", r"encoder.fusions.\1.context_norm."),
        (r"Fuse\.(\d+)\.(attn|norm2|mlp)\.", r"encoder.fusions.\1.\2."),
        (r"decoder\.pre_conv\.", "decoder.pre_conv."),
        (r"decoder\.segmentation_head\.0\.", "decoder.head.0."),
        (r"decoder\.segmentation_head\.2\.0\.", "decoder.head.2."),
    ]
    for name, index in _DECODER_BLOCKS.items():
        rules += [
            (rf"decoder\.{name}\.attn\.global_local_attention\.", f"decoder.blocks.{index}.attn.global_local."),
            (rf"decoder\.{name}\.attn\.eca_layer\.", f"decoder.blocks.{index}.attn.channel."),
            (rf"decoder\.{name}\.(norm1|norm2|mlp)\.", rf"decoder.blocks.{index}.\1."),
        ]
    for name, ours in _DECODER_FUSIONS.items():
        rules += [
            (rf"decoder\.{name}\.pre_conv\.0\.", f"decoder.{ours}.pre_conv."),
            (rf"decoder\.{name}\.(weights)$", rf"decoder.{ours}.\1"),
            (rf"decoder\.{name}\.(post_conv|shortcut|proj)\.", rf"decoder.{ours}.\1."),
        ]
    rules += [
        (r"decoder\.p1\.pa\.", "decoder.refine.pixel_attention."),
        (r"decoder\.p1\.ca\.([13])\.0\.", r"decoder.refine.channel_attention.\1."),
    ]
    return [(re.compile(pattern), replacement) for pattern, replacement in rules]


#: Names inside modules that differ (the window attention, the WTConv2d parts, the depthwise-separable WTConv).
_PART_RULES = [
    (re.compile(pattern), replacement)
    for pattern, replacement in [
        (r"\.qkv\.0\.weight$", ".attention.qkv.weight"),
        (r"\.relative_position_bias_table$", ".attention.relative_position_bias_table"),
        (r"\.proj\.depthwise\.", ".proj.0."),
        (r"\.proj\.pointwise\.", ".proj.1."),
        (r"\.base_scale\.weight$", ".base_scale"),
        (r"\.wavelet_scale\.(\d+)\.weight$", r".wavelet_scales.\1"),
    ]
]
_MODULE_RULES = _module_rules()
#: The ResNet trunk's second registration in the reference, as its `backbone.*` name.
_TRUNK_ALIASES: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    (re.compile(r"(conv1|bn1)\."), r"backbone.\1."),
    (re.compile(r"layers\.([0-3])\."), lambda match: f"backbone.layer{int(match.group(1)) + 1}."),
]
_CONSTANT = re.compile(
    r".*\.(?P<wavelet>i?wt_filter)|.*\.relative_position_index|vssm_encoder\.downsamples\.\d+\.wt\.(?P<haar>h[01]_(col|row))"
)


def reference_key_to_ours(key: str) -> str | None:
    """Our state-dict name of a reference weight (after `backbone.*` canonicalization), or None if it has none."""
    for pattern, replacement in _MODULE_RULES:
        match = pattern.match(key)
        if match:
            mapped = match.expand(replacement) + key[match.end() :]
            for part, renamed in _PART_RULES:
                mapped = part.sub(renamed, mapped)
            return mapped
    return None


def read_reference_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """The reference model's state dict from a file saved by its training code, with any key prefix removed.

    The file is read with `torch.load(weights_only=True)`: tensors and plain containers only, never arbitrary
    pickled objects. Accepted: the state dict itself, or a dict holding it under "state_dict", "model",
    "model_state_dict" or "net"; keys may carry a prefix such as "net." (Lightning) or "module." (DataParallel).

    Raises:
        CheckpointError: an unreadable file, pickled objects other than tensors, or no CMT-UNet weights inside.
    """
    source = Path(path)
    try:
        loaded = torch.load(source, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{source} does not exist; give the .pth file the reference's training saved") from None
    except pickle.UnpicklingError as error:
        unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        if unsafe is None:
            raise CheckpointError(
                f"cannot read {source} as a torch file; is it truncated or of another kind?"
            ) from None
        raise CheckpointError(
            f"{source} holds Python objects besides tensors ({unsafe.group(1)}), which are not unpickled for safety; "
            "in the reference's environment save only the weights, torch.save(model.state_dict(), 'weights.pth'), "
            "and convert that file"
        ) from None
    except (OSError, RuntimeError, EOFError) as error:
        raise CheckpointError(f"cannot read {source} as a torch file ({error}); is it truncated?") from None
    state = _find_state_dict(loaded)
    if state is None:
        raise CheckpointError(
            f"{source} holds no CMT-UNet reference weights (no key ending in {ANCHOR_KEY!r}); convert a file saved "
            "with torch.save(model.state_dict(), ...) from the reference's CMT_UNet"
        )
    anchor = next(key for key in state if key.endswith(ANCHOR_KEY))
    prefix = anchor[: -len(ANCHOR_KEY)]
    outside = sorted(key for key in state if not key.startswith(prefix))
    not_tensors = sorted(key for key, value in state.items() if not isinstance(value, Tensor))
    if outside or not_tensors:
        raise CheckpointError(
            f"{source}: entries that are not weights of the reference model (prefix {prefix!r}): "
            f"{_listing(outside + not_tensors)}; save only the model's state_dict()"
        )
    return {key[len(prefix) :]: value for key, value in state.items()}


def _find_state_dict(loaded: object) -> Mapping[str, Any] | None:
    """The mapping that holds the reference's weights: `loaded` itself or one wrapped in it."""
    if not isinstance(loaded, Mapping):
        return None
    if any(isinstance(key, str) and key.endswith(ANCHOR_KEY) for key in loaded):
        return loaded
    for wrapper in WRAPPER_KEYS:
        found = _find_state_dict(loaded.get(wrapper))
        if found is not None:
            return found
    return None


def _listing(keys: Sequence[str]) -> str:
    shown = ", ".join(keys[:_LISTED])
    return f"{shown} (and {len(keys) - _LISTED} more)" if len(keys) > _LISTED else shown


def _canonical_trunk(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The state with the trunk's second registration (`conv1`, `bn1`, `layers.i`) folded into `backbone.*`."""
    canonical: dict[str, Tensor] = {}
    aliases: dict[str, Tensor] = {}
    for key, value in state.items():
        for pattern, replacement in _TRUNK_ALIASES:
            if pattern.match(key):
                aliases[pattern.sub(replacement, key, count=1)] = value
                break
        else:
            canonical[key] = value
    differing = sorted(
        key for key, value in aliases.items() if key in canonical and not torch.equal(canonical[key], value)
    )
    if differing:
        raise CheckpointError(
            "the reference's two registrations of the ResNet trunk (backbone.* and conv1/bn1/layers.*) differ at "
            f"{_listing(differing)}; they are the same tensors in a state dict the reference saved"
        )
    return aliases | canonical


def _count(state: Mapping[str, Tensor], prefix: str) -> int:
    """How many numbered children a module has: distinct N in keys starting `prefix` + "N."."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    return len({match.group(1) for key in state if (match := pattern.match(key))})


def reference_config(state: Mapping[str, Tensor]) -> tuple[ModelConfig, int, int]:
    """The architecture of reference weights: (our config, num_classes, in_channels), read from tensor shapes.

    Reads the ResNet variant (the reference's `backbone_name`), the decoder width and window, the classes, and the
    sizes the reference fixes in code (Mamba widths and depths, heads, MLP width), so that its variants convert too.

    Args:
        state: the reference state dict (from `read_reference_state_dict`, or the reference model's own).

    Raises:
        CheckpointError: weights that do not have the reference's layout.
    """
    state = _canonical_trunk(state)
    blocks = tuple(_count(state, f"backbone.layer{stage}.") for stage in range(1, 5))
    bottleneck = "backbone.layer1.0.conv3.weight" in state
    backbone = _RESNETS.get((bottleneck, blocks))
    if backbone is None:
        raise CheckpointError(
            f"the reference's ResNet has {list(blocks)} {'bottleneck' if bottleneck else 'basic'} blocks per stage, "
            f"which is none of {sorted(set(_RESNETS.values()))}; only timm ResNets of these depths convert"
        )
    mamba = "vssm_encoder.layers"
    try:
        dims = tuple(state[f"{mamba}.{stage}.blocks.0.ln_1.weight"].shape[0] for stage in range(4))
        mixer = f"{mamba}.0.blocks.0.self_attention"
        table = state["decoder.b4.attn.global_local_attention.relative_position_bias_table"]
        overrides: dict[str, Any] = {
            "backbone": backbone,
            "mamba_dims": dims,
            "mamba_depths": tuple(_count(state, f"{mamba}.{stage}.blocks.") for stage in range(4)),
            "mamba_stem_channels": state["stem.0.weight"].shape[0],
            "d_state": state[f"{mixer}.A_logs"].shape[1],
            "ssm_expand": state[f"{mixer}.in_proj.weight"].shape[0] / (2 * dims[0]),
            "fusion_heads": state["Fuse.0.attn.relative_position_bias_table"].shape[1],
            "mlp_ratio": state["Fuse.0.mlp.fc1.weight"].shape[0] / state["Fuse.0.normx.weight"].shape[0],
            "decode_channels": state["decoder.pre_conv.0.weight"].shape[0],
            "decoder_heads": table.shape[1],
            "window_size": (math.isqrt(table.shape[0]) + 1) // 2,
        }
        num_classes = state[ANCHOR_KEY].shape[0]
        in_channels = state["stem.0.weight"].shape[1]
    except KeyError as error:
        raise CheckpointError(
            f"the weights lack the reference's {error.args[0]!r}: not a CMT-UNet state dict"
        ) from None
    return dataclasses.replace(preset_config("cmt_unet_base"), **overrides), num_classes, in_channels


def _expected_constant(key: str, value: Tensor, wavelet: str) -> Tensor | None:
    """What the reference computes for one of its stored constants, or None if `key` is not one."""
    match = _CONSTANT.fullmatch(key)
    if match is None:
        return None
    if match.group("wavelet"):
        analysis, synthesis = wavelet_filter_bank(wavelet)
        bank = analysis if match.group("wavelet") == "wt_filter" else synthesis
        return bank.repeat(value.shape[0] // 4, 1, 1).unsqueeze(1)
    if match.group("haar"):
        low, high = [math.sqrt(0.5)] * 2, [math.sqrt(0.5), -math.sqrt(0.5)]
        taps = torch.tensor(low if match.group("haar")[1] == "0" else high, dtype=torch.float64)
        return taps.reshape(value.shape)
    return relative_position_index(math.isqrt(value.shape[0]))


def convert_reference_state_dict(state: Mapping[str, Tensor], model: SegmentationModel) -> dict[str, Tensor]:
    """Map the reference's state dict onto `model`'s names, checking every key, shape and constant.

    Args:
        state: the reference state dict (from `read_reference_state_dict`, or the reference model's own).
        model: the model to fill, e.g. `create_model("cmt_unet_base", ...)` built from `reference_config`.

    Returns:
        Our state dict, for `model.load_state_dict(..., strict=True)`.

    Raises:
        CheckpointError: a reference key with no counterpart, a weight of ours with no source, a shape that
            differs, a constant that is not what the reference computes, or differing duplicates; each lists them.
    """
    wavelet = model.config.wavelet if model.config is not None else ModelConfig.wavelet
    ours = model.state_dict()
    mapped: dict[str, Tensor] = {}
    unmapped, wrong_shape, wrong_constant = [], [], []
    for key, value in _canonical_trunk(state).items():
        expected = _expected_constant(key, value, wavelet)
        if expected is not None:
            if expected.shape != value.shape or not torch.allclose(value.double(), expected.double(), atol=1e-6):
                wrong_constant.append(key)
            continue
        target = reference_key_to_ours(key)
        if target is None or target not in ours or target in mapped:
            unmapped.append(key)
        elif ours[target].shape != value.shape:
            wrong_shape.append(f"{key} {tuple(value.shape)} vs {target} {tuple(ours[target].shape)}")
        else:
            mapped[target] = value
    missing = sorted(set(ours) - set(mapped))
    problems = [
        f"{len(keys)} {what}: {_listing(sorted(keys))}"
        for what, keys in (
            ("reference keys without a counterpart", unmapped),
            (f"weights of {model.architecture} without a source", missing),
            ("shapes that differ", wrong_shape),
            (f"stored constants that differ from the {wavelet} filters and window index", wrong_constant),
        )
        if keys
    ]
    if problems:
        raise CheckpointError(
            "the weights do not convert to cmt-geo's CMT-UNet: "
            + "; ".join(problems)
            + "; only state dicts of the reference's CMT_UNet (XUE-YYC/CMT-UNet) convert"
        )
    return mapped


def _normalization(
    in_channels: int,
    bands: Sequence[str] | None,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
) -> NormalizationStats:
    """The card's normalization: what is given, else band_1.. and the reference's 8-bit scaling (mean 0, std 255)."""
    if (mean is None) != (std is None):
        raise ConfigError(
            "give mean and std together, one value per band (mean=/std=, --mean/--std), or neither for the "
            "reference's scaling of 8-bit values to 0-1"
        )
    for what, values in (("bands", bands), ("mean", mean), ("std", std)):
        if values is not None and len(values) != in_channels:
            raise ConfigError(
                f"the weights take {in_channels} bands, but {what} has {len(values)} values {tuple(values)}; "
                f"give one per band ({what}=, --{what})"
            )
    return NormalizationStats(
        mean=tuple(mean) if mean is not None else (0.0,) * in_channels,
        std=tuple(std) if std is not None else (REFERENCE_SCALE,) * in_channels,
        bands=tuple(bands) if bands is not None else tuple(f"band_{i + 1}" for i in range(in_channels)),
    )


def convert_reference_checkpoint(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    class_colors: Sequence[tuple[int, int, int]] | None = None,
    bands: Sequence[str] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    patch_size: int | None = None,
    ground_sample_distance: float | None = None,
    ignore_index: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Convert weights saved by the reference CMT-UNet's training into a cmt-geo checkpoint `predict` can use.

    The architecture (`cmt_unet_base`, or the preset or options matching the weights' ResNet and sizes), the
    classes and the bands are read from the weights; the card gets what they cannot tell.

    Args:
        source: the reference's .pth file (see `read_reference_state_dict` for the forms accepted).
        output: the checkpoint to write (atomically, with a full model card).
        num_classes: classes the model was trained for; None reads them from the weights (given, it is checked).
        class_names: one name per class in output order; None: class_0, class_1, ...
        class_colors: one (R, G, B) per class; None: distinct colours.
        bands: one name per input band in order; None: band_1, band_2, ...
        mean: per-band mean of the training input; None (with std None): 0, as the reference's README scales
            8-bit pixels to 0-1.
        std: per-band standard deviation of the training input; None (with mean None): 255.
        patch_size: training patch side in pixels (the default tile size of `predict`); None: 256, the size the
            reference's README trains on.
        ground_sample_distance: training pixel size in metres, if known.
        ignore_index: label value ignored in training, if any.
        overwrite: replace an existing output.

    Returns:
        The checkpoint written.

    Raises:
        CheckpointError: the weights are not the reference's, or do not map completely (the message lists keys).
        ConfigError: classes or bands that do not match the weights, or mean without std.
        OutputExistsError: `output` exists and `overwrite` is False.
    """
    reference = _canonical_trunk(read_reference_state_dict(source))
    config, found_classes, in_channels = reference_config(reference)
    names = tuple(class_names) if class_names is not None else tuple(f"class_{i}" for i in range(found_classes))
    for what, count in (("num_classes", num_classes), ("the class names", len(names))):
        if count is not None and count != found_classes:
            raise ConfigError(
                f"{source} holds a model of {found_classes} classes, but {what} gives {count}; give "
                f"{found_classes} (num_classes= / class_names=, --num-classes / --classes)"
            )
    normalization = _normalization(in_channels, bands, mean, std)
    if class_colors is None:
        class_colors = default_colors(found_classes)
    architecture = next((name for name in list_models() if preset_config(name) == config), "cmt_unet_base")
    overrides = {
        field.name: getattr(config, field.name)
        for field in dataclasses.fields(config)
        if getattr(config, field.name) != getattr(preset_config(architecture), field.name)
    }
    model = create_model(architecture, found_classes, in_channels, **overrides)
    model.load_state_dict(convert_reference_state_dict(reference, model), strict=True)
    card = ModelCard.for_model(
        model,
        class_names=names,
        class_colors=class_colors,
        normalization=normalization,
        patch_size=patch_size or REFERENCE_PATCH_SIZE,
        ground_sample_distance=ground_sample_distance,
        ignore_index=ignore_index,
    )
    written = save_checkpoint(model, output, card, overwrite=overwrite)
    logger.debug("converted %s (%s, %d classes) into %s", source, architecture, found_classes, written)
    return written
