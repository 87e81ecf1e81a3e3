"""Checkpoints: bit-exact round trip, self-describing card, refusal of bad files."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
import timm
import torch
from safetensors.torch import load_file

from cmt_geo.errors import CheckpointError, ConfigError, OutputExistsError
from cmt_geo.models import (
    ModelCard,
    NormalizationStats,
    SegmentationModel,
    create_model,
    load_checkpoint,
    read_card,
    save_checkpoint,
)
from cmt_geo.models.checkpoint import checkpoint_digest

CLASSES = ("impervious", "building", "low vegetation")
COLORS = ((255, 255, 255), (0, 0, 255), (0, 255, 255))
STATS = NormalizationStats((0.4, 0.5, 0.5, 0.5), (0.2, 0.25, 0.25, 0.25), ("nir", "red", "green", "blue"))


def _card(model: SegmentationModel, **changes: object) -> ModelCard:
    values: dict[str, object] = {
        "class_names": CLASSES,
        "class_colors": COLORS,
        "normalization": STATS,
        "patch_size": 512,
        "ground_sample_distance": 0.09,
        "ignore_index": 255,
    } | changes
    return ModelCard.for_model(model, **values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def trained_model() -> SegmentationModel:
    """A small model after one training step, so batch-norm statistics are not at their defaults."""
    torch.manual_seed(0)
    model = create_model("unetformer", num_classes=3, in_channels=4, dropout=0.2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 4, 64, 64)).mean().backward()
    optimizer.step()
    return model.eval()


@pytest.fixture
def saved(tmp_path: Path, trained_model: SegmentationModel) -> Path:
    return save_checkpoint(trained_model, tmp_path / "model.ckpt", _card(trained_model))


def test_round_trip_is_bit_exact(saved: Path, trained_model: SegmentationModel) -> None:
    model, card = load_checkpoint(saved)
    assert card == _card(trained_model)
    assert model.architecture == "unetformer"
    assert not model.training
    original, loaded = trained_model.state_dict(), model.state_dict()
    assert original.keys() == loaded.keys()
    for name, tensor in original.items():
        assert loaded[name].dtype == tensor.dtype
        assert torch.equal(loaded[name], tensor), name
    x = torch.randn(1, 4, 40, 56)
    with torch.inference_mode():
        assert torch.equal(model(x), trained_model(x))


def test_card_carries_what_predict_needs(saved: Path) -> None:
    _, card = load_checkpoint(saved)
    assert card.num_classes == 3
    assert card.in_channels == 4
    assert card.class_colors == COLORS
    assert card.band_names == ("nir", "red", "green", "blue")
    assert card.normalization == STATS
    assert card.patch_size == 512
    assert card.ground_sample_distance == 0.09
    assert card.ignore_index == 255
    assert card.architecture_args["dropout"] == 0.2
    assert not {"pretrained_backbone", "scan_backend", "gradient_checkpointing"} & set(card.architecture_args)
    assert read_card(saved) == card
    assert card.cmt_geo_version


def test_cards_are_hashable_and_compare_by_value(saved: Path, trained_model: SegmentationModel) -> None:
    _, card = load_checkpoint(saved)
    assert hash(card) == hash(_card(trained_model))
    assert {card, _card(trained_model)} == {card}
    assert card != _card(trained_model, patch_size=256)
    other = _card(create_model("unet", num_classes=3, in_channels=4))
    assert card.architecture_args != other.architecture_args
    assert hash(card.architecture_args) != hash(other.architecture_args)


def test_a_modified_weight_byte_is_refused(saved: Path) -> None:
    data = bytearray(saved.read_bytes())
    data[-3] ^= 0x40
    saved.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="failed its checksum"):
        load_checkpoint(saved)


def test_a_truncated_file_is_refused(saved: Path) -> None:
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(saved)
    saved.write_bytes(data[:5])
    with pytest.raises(CheckpointError, match="truncated or empty"):
        load_checkpoint(saved)


def test_a_pickle_or_garbage_file_is_refused(tmp_path: Path) -> None:
    pickled = tmp_path / "pickled.ckpt"
    torch.save({"state_dict": {}}, pickled)
    with pytest.raises(CheckpointError, match="not a cmt-geo checkpoint"):
        load_checkpoint(pickled)
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "missing.ckpt")


def _rewrite_card(path: Path, change: dict[str, object], *, resign: bool = True) -> None:
    """Edit the card inside the header; `resign` updates the digest too, as a writer with another card would."""
    data = path.read_bytes()
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    card = json.dumps(json.loads(header["__metadata__"]["card"]) | change)
    header["__metadata__"]["card"] = card
    if resign:
        header["__metadata__"]["sha256"] = checkpoint_digest(card, load_file(path))
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    path.write_bytes(len(encoded).to_bytes(8, "little") + encoded + data[8 + length :])


@pytest.mark.parametrize(
    "change",
    [
        {"class_names": ["impervious", "roof", "low vegetation"]},
        {"normalization": STATS.to_dict() | {"std": [1, 1, 1, 1]}},
    ],
)
def test_an_edited_card_fails_the_checksum(saved: Path, change: dict[str, object]) -> None:
    _rewrite_card(saved, change, resign=False)
    with pytest.raises(CheckpointError, match="failed its checksum: the card or the weights were modified"):
        load_checkpoint(saved)


def test_weights_that_do_not_fit_the_architecture_are_refused(saved: Path, trained_model: SegmentationModel) -> None:
    args = dict(_card(trained_model).architecture_args) | {"decode_channels": 32}
    _rewrite_card(saved, {"architecture_args": args})
    with pytest.raises(CheckpointError, match="does not match architecture 'unetformer'"):
        load_checkpoint(saved)


def test_an_unknown_architecture_is_refused(saved: Path) -> None:
    _rewrite_card(saved, {"architecture": "mystery_net"})
    with pytest.raises(CheckpointError, match="cannot build: unknown model 'mystery_net'"):
        load_checkpoint(saved)


def test_an_invalid_card_is_refused(saved: Path) -> None:
    _rewrite_card(saved, {"class_colors": [[0, 0, 0]]})
    with pytest.raises(CheckpointError, match="model card is invalid: 3 class names but 1 colours"):
        load_checkpoint(saved)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"class_colors": [["a", 0, 0], [0, 0, 255], [0, 255, 255]]}, r"class_colors must be a sequence of sequences"),
        ({"class_names": "abc"}, r"class_names must be a sequence of strings, got 'abc'"),
        ({"normalization": STATS.to_dict() | {"mean": [0.4, "x", 0.5, 0.5]}}, r"mean must be a sequence of finite"),
        ({"normalization": STATS.to_dict() | {"std": [0.2, 0.2, 0.2]}}, r"4 means, 3 stds and 4 bands"),
        ({"patch_size": "512"}, r"patch_size must be an integer, got '512'"),
        ({"ignore_index": 2.5}, r"ignore_index must be an integer or None, got 2.5"),
        ({"ignore_index": 0}, r"ignore_index 0 is the index of class 'impervious'"),
        ({"architecture_args": "xx"}, r"architecture_args must map option names to values, got 'xx'"),
    ],
)
def test_a_card_with_wrong_types_is_a_checkpoint_error(saved: Path, change: dict[str, object], message: str) -> None:
    _rewrite_card(saved, change)
    with pytest.raises(CheckpointError, match=rf"model card is invalid: .*{message}.*not a valid cmt-geo checkpoint"):
        load_checkpoint(saved)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"num_classes": 4}, r"unknown architecture option\(s\) \['num_classes'\]; valid options: \['backbone'"),
        ({"pretrained_backbone": True}, r"unknown architecture option\(s\) \['pretrained_backbone'\]"),
        ({"mamba_dims": "xx"}, r"model option mamba_dims must be a sequence of integers, got 'xx'"),
    ],
)
def test_architecture_args_are_checked_against_the_model_config(
    saved: Path, trained_model: SegmentationModel, change: dict[str, object], message: str
) -> None:
    _rewrite_card(saved, {"architecture_args": dict(_card(trained_model).architecture_args) | change})
    with pytest.raises(CheckpointError, match=rf"cannot build: {message}.*not a valid cmt-geo checkpoint"):
        load_checkpoint(saved)


def test_a_model_that_fails_to_build_is_a_checkpoint_error(saved: Path, trained_model: SegmentationModel) -> None:
    args = dict(_card(trained_model).architecture_args) | {"decoder_heads": 0}  # ZeroDivisionError inside timm/torch
    _rewrite_card(saved, {"architecture_args": args})
    with pytest.raises(CheckpointError, match=r"cannot build: .*; the file is not a valid cmt-geo checkpoint"):
        load_checkpoint(saved)


def test_runtime_settings_are_chosen_at_load_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small = {"mamba_dims": (8, 16, 32, 64), "mamba_depths": (1, 1, 1, 1), "mamba_stem_channels": 8}
    model = create_model("cmt_unet_tiny", num_classes=3, in_channels=4, scan_backend="mamba", **small)
    path = save_checkpoint(model, tmp_path / "mamba.ckpt", _card(model))
    create = timm.create_model

    def offline_create(name: str, **kwargs: Any) -> torch.nn.Module:
        assert not kwargs.get("pretrained"), "load_checkpoint must not fetch pretrained weights"
        return create(name, **kwargs)

    monkeypatch.setattr(timm, "create_model", offline_create)
    loaded, _ = load_checkpoint(path)
    assert loaded.encoder.mamba.stages[0][0].mixer.scan_backend == "auto"
    assert loaded(torch.randn(1, 4, 32, 32)).shape == (1, 3, 32, 32)  # scan_backend "mamba" would fail on CPU
    loaded, _ = load_checkpoint(path, scan_backend="torch", gradient_checkpointing=True)
    assert loaded.encoder.mamba.stages[0][0].mixer.scan_backend == "torch"
    assert loaded.encoder.mamba.gradient_checkpointing


@pytest.mark.parametrize("path", ["model.ckpt", "missing.ckpt"])
def test_an_invalid_runtime_option_is_blamed_not_the_file(saved: Path, path: str) -> None:
    with pytest.raises(ConfigError, match=r"scan_backend must be one of \('auto', 'mamba', 'cpu', 'torch', 'ref'\)"):
        load_checkpoint(saved.parent / path, scan_backend="nope")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="fused_attention must be true or false, got 'yes'"):
        load_checkpoint(saved, fused_attention="yes")  # type: ignore[arg-type]


def test_an_existing_file_is_replaced_only_with_overwrite(saved: Path, trained_model: SegmentationModel) -> None:
    before = saved.stat().st_mtime_ns
    with pytest.raises(OutputExistsError, match=r"model.ckpt exists; pass .*overwrite=True"):
        save_checkpoint(trained_model, saved, _card(trained_model))
    assert saved.stat().st_mtime_ns == before
    time.sleep(0.01)
    save_checkpoint(trained_model, saved, _card(trained_model, patch_size=256), overwrite=True)
    assert read_card(saved).patch_size == 256


def test_a_checkpoint_gets_the_usual_file_permissions(tmp_path: Path, trained_model: SegmentationModel) -> None:
    previous = os.umask(0o022)
    try:
        path = save_checkpoint(trained_model, tmp_path / "shared.ckpt", _card(trained_model))
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o644


def test_failed_save_leaves_the_previous_file_and_no_temporary(
    saved: Path, trained_model: SegmentationModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    import safetensors.torch

    before = saved.read_bytes()

    def broken_save(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(trained_model, saved, _card(trained_model), overwrite=True)
    assert saved.read_bytes() == before
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]


def test_card_must_match_the_model(tmp_path: Path, trained_model: SegmentationModel) -> None:
    other = create_model("unet", num_classes=3, in_channels=4)
    with pytest.raises(ConfigError, match="other options than the model"):
        save_checkpoint(trained_model, tmp_path / "x.ckpt", _card(other))
    with pytest.raises(ConfigError, match=r"3 class names but 2 colours: give one \(R, G, B\) per class"):
        _card(trained_model, class_colors=COLORS[:2])
    three_bands = _card(trained_model, normalization=NormalizationStats((0.1,) * 3, (1.0,) * 3, ("r", "g", "b")))
    with pytest.raises(ConfigError, match="the card has 3 classes and 3 bands, the model 3 and 4"):
        save_checkpoint(trained_model, tmp_path / "x.ckpt", three_bands)
    with pytest.raises(ConfigError, match=r"class colour \(300, 0, 0\)"):
        _card(trained_model, class_colors=((300, 0, 0), *COLORS[1:]))
    four_classes = _card(trained_model, class_names=(*CLASSES, "car"), class_colors=(*COLORS, (255, 255, 0)))
    with pytest.raises(ConfigError, match="the card has 4 classes and 4 bands, the model 3 and 4"):
        save_checkpoint(trained_model, tmp_path / "x.ckpt", four_classes)


def test_the_readme_models_snippet_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """README.md "## Models", verbatim but for cmt_unet_tiny in place of cmt_unet_base (to stay fast)."""
    monkeypatch.chdir(tmp_path)
    from cmt_geo.models import (
        ModelCard,
        NormalizationStats,
        create_model,
        list_models,
        load_checkpoint,
        save_checkpoint,
    )

    model = create_model("cmt_unet_tiny", num_classes=6, in_channels=4)  # any band count, any input size
    model = create_model(
        "cmt_unet_tiny", num_classes=6, in_channels=4, use_msaa=True, use_rcm=True, scan_backend="auto"
    )
    card = ModelCard.for_model(
        model,
        class_names=["impervious", "building", "low vegetation", "tree", "car", "clutter"],
        class_colors=[(255, 255, 255), (0, 0, 255), (0, 255, 255), (0, 255, 0), (255, 255, 0), (255, 0, 0)],
        normalization=NormalizationStats(  # e.g. from cmt_geo.data.dataset_normalization(train)
            mean=(120.5, 81.8, 80.9, 74.2), std=(54.9, 38.8, 37.6, 35.4), bands=("nir", "red", "green", "blue")
        ),
        patch_size=512,
        ground_sample_distance=0.09,
        ignore_index=255,
    )
    save_checkpoint(model, "vaihingen.ckpt", card)
    model, card = load_checkpoint("vaihingen.ckpt", scan_backend="auto")  # never unpickles anything

    assert "cmt_unet_tiny" in list_models()
    assert card.in_channels == model.in_channels == 4
