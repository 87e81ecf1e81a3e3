"""The model card: torch-free, validated, JSON round trip, read from a checkpoint header alone."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cmt_geo.card import (
    FORMAT_NAME,
    FORMAT_VERSION,
    IGNORE_INDEX,
    ArchitectureArgs,
    ModelCard,
    NormalizationStats,
    read_card,
)
from cmt_geo.errors import CheckpointError, ConfigError

STATS = NormalizationStats(mean=(100.0, 110.0, 90.0), std=(40.0, 35.0, 30.0), bands=("red", "green", "blue"))


def _card(**changes: Any) -> ModelCard:
    values: dict[str, Any] = {
        "architecture": "unet",
        "architecture_args": {"decoder": "unet", "unet_channels": [64, 32, 16]},
        "class_names": ("building", "road"),
        "class_colors": ((255, 0, 0), (128, 128, 128)),
        "normalization": STATS,
        "patch_size": 256,
        "ground_sample_distance": 0.3,
        "ignore_index": IGNORE_INDEX,
    } | changes
    return ModelCard(**values)


def _write_header(path: Path, metadata: dict[str, str]) -> Path:
    """A safetensors file with no tensors, only header metadata (what `read_card` reads)."""
    header = json.dumps({"__metadata__": metadata}).encode()
    path.write_bytes(len(header).to_bytes(8, "little") + header)
    return path


def _checkpoint_header(card: ModelCard, version: str = FORMAT_VERSION) -> dict[str, str]:
    return {"format": FORMAT_NAME, "format_version": version, "card": card.to_json(), "sha256": "0" * 64}


def test_importing_the_card_loads_no_deep_learning_library() -> None:
    code = "import sys, cmt_geo.card, cmt_geo.validation; print(' '.join(sys.modules))"
    loaded = {name.split(".")[0] for name in subprocess.check_output([sys.executable, "-c", code], text=True).split()}
    assert loaded.isdisjoint({"torch", "torchgeo", "kornia", "timm", "numpy"}), loaded


def test_json_round_trip_keeps_the_card_and_nests_normalization() -> None:
    card = _card()
    values = json.loads(card.to_json())
    assert values["normalization"] == {
        "mean": [100.0, 110.0, 90.0],
        "std": [40.0, 35.0, 30.0],
        "bands": list(STATS.bands),
    }
    assert "band_names" not in values
    assert ModelCard.from_json(card.to_json()) == card
    assert hash(ModelCard.from_json(card.to_json())) == hash(card)
    assert card.band_names == ("red", "green", "blue")
    assert (card.in_channels, card.num_classes) == (3, 2)
    assert card.architecture_args["unet_channels"] == (64, 32, 16)


def test_read_card_reads_the_header_alone(tmp_path: Path) -> None:
    path = _write_header(tmp_path / "model.ckpt", _checkpoint_header(_card()))
    assert read_card(path) == _card()


def test_another_format_version_is_refused_naming_both(tmp_path: Path) -> None:
    path = _write_header(tmp_path / "old.ckpt", _checkpoint_header(_card(), version="2"))
    with pytest.raises(CheckpointError, match=rf"format version '2', this cmt-geo \(.*\) reads '{FORMAT_VERSION}'"):
        read_card(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"truncated or empty \(0 bytes\)"),
        ((1000).to_bytes(8, "little") + b"{}", "header runs past the end of the file"),
        ((4).to_bytes(8, "little") + b"\xff\xfe{}", "unreadable header"),
        (
            (2).to_bytes(8, "little") + b"{}",
            r"not a cmt-geo checkpoint \(no model card\); write it with .*save_checkpoint",
        ),
    ],
)
def test_files_that_are_not_checkpoints_are_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.ckpt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        read_card(path)
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        read_card(tmp_path / "missing.ckpt")


def test_an_invalid_card_in_a_header_names_the_file(tmp_path: Path) -> None:
    metadata = _checkpoint_header(_card()) | {"card": json.dumps({"architecture": "unet", "colour": 1})}
    path = _write_header(tmp_path / "edited.ckpt", metadata)
    with pytest.raises(CheckpointError, match=r"edited.ckpt: the model card is invalid: unknown model card field"):
        read_card(path)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"class_names": ("road", "building", "road")}, r"class names \['road'\] appear more than once"),
        ({"ignore_index": 1}, r"ignore_index 1 is the index of class 'road'; use a value outside 0..1, e.g. 255"),
        ({"class_colors": ((255, 0, 0),)}, r"2 class names but 1 colours"),
        ({"class_colors": ((255, 0, 0), (256, 0, 0))}, r"class colour \(256, 0, 0\) is not an \(R, G, B\) triple"),
        ({"class_colors": ((255, 0, 0), (1, 2))}, r"class_colors must be a sequence of sequences of 3 integers"),
        ({"patch_size": "256"}, r"patch_size must be an integer, got '256'"),
        ({"patch_size": 0}, r"patch_size must be a positive number of pixels, got 0"),
        ({"ground_sample_distance": math.nan}, r"ground_sample_distance must be a finite number or None, got nan"),
        ({"normalization": {"mean": [1.0]}}, r"normalization must be a NormalizationStats"),
        ({"architecture_args": "xx"}, r"architecture_args must map option names to values, got 'xx'"),
        ({"architecture_args": {"dims": {1, 2}}}, r"architecture_args\['dims'\] must be a number, string"),
        ({"architecture_args": {"rate": math.inf}}, r"architecture_args\['rate'\] must be a number"),
    ],
)
def test_an_invalid_card_is_a_config_error_naming_the_value(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _card(**changes)


def test_architecture_args_are_immutable_hashable_json() -> None:
    args = ArchitectureArgs({"dims": [8, 16], "name": "x", "rate": 0.5, "flag": True, "none": None})
    assert args == {"dims": (8, 16), "flag": True, "name": "x", "none": None, "rate": 0.5}
    assert hash(args) == hash(ArchitectureArgs(dict(args)))
    assert list(args) == sorted(args)
    with pytest.raises(TypeError):
        args["dims"] = (1,)  # type: ignore[index]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"mean": (math.nan, 1.0)}, r"normalization mean must be a sequence of finite numbers, got \(nan, 1.0\)"),
        ({"std": (1.0, math.inf)}, r"normalization std must be a sequence of finite numbers, got \(1.0, inf\)"),
        ({"std": (1.0, 0.0)}, r"normalization std \(1.0, 0.0\) must be positive for every band"),
        ({"std": (1.0,)}, r"2 means, 1 stds and 2 bands; give one of each per band"),
        ({"bands": "ab"}, r"normalization bands must be a sequence of strings, got 'ab'"),
    ],
)
def test_invalid_normalization_is_a_config_error(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        NormalizationStats(**({"mean": (1.0, 2.0), "std": (3.0, 4.0), "bands": ("a", "b")} | values))


def test_normalization_dict_round_trip_and_coercion() -> None:
    stats = NormalizationStats(mean=[1, 2], std=[3, 4], bands=["a", "b"])  # type: ignore[arg-type]
    assert stats == NormalizationStats((1.0, 2.0), (3.0, 4.0), ("a", "b"))
    assert NormalizationStats.from_dict(stats.to_dict()) == stats
    with pytest.raises(
        ConfigError, match=r"normalization keys \['mean', 'std'\] must be exactly \['mean', 'std', 'bands'\]"
    ):
        NormalizationStats.from_dict({"mean": [1.0], "std": [1.0]})


def test_normalize_standardizes_integer_and_float_images() -> None:
    torch = pytest.importorskip("torch")
    image = torch.full((1, 3, 2, 2), 50, dtype=torch.uint8)  # below the mean: no uint8 wrap-around
    normalized = STATS.normalize(image)
    assert normalized.dtype == torch.float32
    assert normalized[0, :, 0, 0].tolist() == pytest.approx([-50 / 40, -60 / 35, -40 / 30])
    torch.testing.assert_close(STATS.normalize(image[0].double()), normalized[0].double())
    with pytest.raises(ConfigError, match=r"image of shape \(1, 4, 2, 2\) has no 3 bands"):
        STATS.normalize(torch.zeros(1, 4, 2, 2))
