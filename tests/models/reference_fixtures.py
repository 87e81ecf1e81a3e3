"""State dicts in the reference CMT-UNet's layout, for the conversion tests (models and CLI).

`MANIFEST` lists the names, shapes and dtypes of the reference's state dict (reference_state_dict.tsv, written by
instantiating the reference); the constants it stores are computed here from their definitions, independently of
cmt_geo: Haar filters and the window attention's relative position index.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch
from torch import Tensor

from cmt_geo.models import SegmentationModel
from cmt_geo.models.reference import reference_key_to_ours

MANIFEST_PATH = Path(__file__).with_name("reference_state_dict.tsv")
TRUNK_ALIAS = re.compile(r"(conv1|bn1|layers\.\d+)\.")
CONSTANT = re.compile(r".*\.(i?wt_filter|relative_position_index|wt\.h[01]_(col|row))")

_HALF = 0.5
_HAAR_2D = torch.tensor(  # LL, HL, LH, HH: outer products of (1, 1) / sqrt 2 and (1, -1) / sqrt 2
    [[[1, 1], [1, 1]], [[1, 1], [-1, -1]], [[1, -1], [1, -1]], [[1, -1], [-1, 1]]], dtype=torch.float32
).mul(_HALF)


def read_manifest() -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """The reference's state-dict names -> (shape, dtype)."""
    entries = {}
    for line in MANIFEST_PATH.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, shape, dtype = line.split("\t")
        entries[name] = (tuple(int(size) for size in shape.split("x") if size), getattr(torch, dtype))
    return entries


def canonical_trunk_name(name: str) -> str:
    """`layers.i.x` -> `backbone.layer{i+1}.x`, `conv1.x` / `bn1.x` -> `backbone.conv1.x` / `backbone.bn1.x`."""
    layer = re.match(r"layers\.(\d+)\.", name)
    if layer:
        return f"backbone.layer{int(layer.group(1)) + 1}." + name[layer.end() :]
    return f"backbone.{name}"


def constant_value(name: str, shape: tuple[int, ...]) -> Tensor:
    """The value the reference computes for one of its stored constants."""
    if name.endswith("wt_filter"):  # wt_filter and iwt_filter: the Haar bank once per channel
        return _HAAR_2D.repeat(shape[0] // 4, 1, 1).unsqueeze(1)
    if name.endswith("relative_position_index"):
        window = math.isqrt(shape[0])
        rows, cols = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
        rows, cols = rows.flatten(), cols.flatten()
        return (
            (rows[:, None] - rows[None, :] + window - 1) * (2 * window - 1) + cols[:, None] - cols[None, :] + window - 1
        )
    root = math.sqrt(_HALF)
    return torch.tensor([root, root] if ".h0_" in name else [root, -root]).reshape(shape)


def random_tensor(shape: tuple[int, ...], dtype: torch.dtype, generator: torch.Generator) -> Tensor:
    """Random values of a weight (positive where a running variance needs it)."""
    if dtype == torch.int64:
        return torch.randint(0, 100, shape, generator=generator)
    return torch.rand(shape, generator=generator, dtype=dtype) + 0.5


def synthetic_reference_state(seed: int = 0) -> dict[str, Tensor]:
    """A reference-layout state dict of the manifest's names and shapes: random weights, true constants, and the
    trunk's second registration sharing the tensors of `backbone.*` (as a saved state dict does)."""
    generator = torch.Generator().manual_seed(seed)
    manifest = read_manifest()
    state: dict[str, Tensor] = {}
    for name, (shape, dtype) in manifest.items():
        if TRUNK_ALIAS.match(name):
            continue
        state[name] = (
            constant_value(name, shape) if CONSTANT.fullmatch(name) else random_tensor(shape, dtype, generator)
        )
    for name in manifest:
        if TRUNK_ALIAS.match(name):
            state[name] = state[canonical_trunk_name(name)]
    return {name: state[name] for name in manifest}  # the manifest's order


def reference_layout(model: SegmentationModel) -> dict[str, Tensor]:
    """`model`'s weights under the reference's names (model: a CMT-UNet variant, e.g. cmt_unet_tiny).

    Names come from the manifest (the ResNet trunk from timm's names under `backbone.`), so a variant of other
    depths or widths gets the reference's layout at its own sizes, with the constants the reference would store.
    """
    ours = model.state_dict()
    reference_names = {reference_key_to_ours(name): name for name in read_manifest() if not CONSTANT.fullmatch(name)}
    state: dict[str, Tensor] = {}
    for key, value in ours.items():
        trunk = key.removeprefix("encoder.resnet.body.")
        if trunk == key:
            state[reference_names[key]] = value
            continue
        layer = re.match(r"layer(\d)\.", trunk)
        state["backbone." + trunk] = value  # and the second registration: conv1, bn1, layers.0-3
        state[f"layers.{int(layer.group(1)) - 1}.{trunk[layer.end() :]}" if layer else trunk] = value
    for name, (shape, _) in read_manifest().items():
        if not CONSTANT.fullmatch(name):
            continue
        owner = name.rsplit(".", 2 if ".wt." in name else 1)[0]
        sibling = next((key for key in state if key.startswith(owner + ".")), None)
        if sibling is None:
            continue  # a module the variant does not have
        if name.endswith("wt_filter"):
            shape = (4 * state[owner + ".base_conv.weight"].shape[0], 1, 2, 2)
        elif name.endswith("relative_position_index"):
            window = (math.isqrt(state[owner + ".relative_position_bias_table"].shape[0]) + 1) // 2
            shape = (window * window, window * window)
        state[name] = constant_value(name, shape)
    return state
