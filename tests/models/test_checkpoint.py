"""Checkpoints: bit-exact round trip, self-describing card, refusal of bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cmt_geo.errors import CheckpointError, ConfigError
from cmt_geo.models import ModelCard, SegmentationModel, create_model, load_checkpoint, save_checkpoint

CLASSES = ("impervious", "building", "low vegetation")
COLORS = ((255, 255, 255), (0, 0, 255), (0, 255, 255))


def _card(model: SegmentationModel, **changes: object) -> ModelCard:
    values: dict[str, object] = {
        "class_names": CLASSES,
        "class_colors": COLORS,
        "band_names": ("nir", "red", "green", "blue"),
        "mean": (0.4, 0.5, 0.5, 0.5),
        "std": (0.2, 0.25, 0.25, 0.25),
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
    assert card.patch_size == 512
    assert card.ground_sample_distance == 0.09
    assert card.ignore_index == 255
    assert card.architecture_args["dropout"] == 0.2
    assert card.architecture_args["pretrained_backbone"] is False
    assert card.cmt_geo_version


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


def _rewrite_card(path: Path, change: dict[str, object]) -> None:
    """Edit the card inside the header (the weights and their digest stay valid)."""
    data = path.read_bytes()
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    card = json.loads(header["__metadata__"]["card"]) | change
    header["__metadata__"]["card"] = json.dumps(card)
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    path.write_bytes(len(encoded).to_bytes(8, "little") + encoded + data[8 + length :])


def test_weights_that_do_not_fit_the_architecture_are_refused(saved: Path, trained_model: SegmentationModel) -> None:
    args = _card(trained_model).architecture_args | {"decode_channels": 32}
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


def test_failed_save_leaves_the_previous_file_and_no_temporary(
    saved: Path, trained_model: SegmentationModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    import safetensors.torch

    before = saved.read_bytes()

    def broken_save(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(trained_model, saved, _card(trained_model))
    assert saved.read_bytes() == before
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]


def test_card_must_match_the_model(tmp_path: Path, trained_model: SegmentationModel) -> None:
    other = create_model("unet", num_classes=3, in_channels=4)
    with pytest.raises(ConfigError, match="other arguments than the model"):
        save_checkpoint(trained_model, tmp_path / "x.ckpt", _card(other))
    with pytest.raises(ConfigError, match=r"3 class names but 2 colours: give one \(R, G, B\) per class"):
        _card(trained_model, class_colors=COLORS[:2])
    with pytest.raises(ConfigError, match="mean has 3 values for 4 bands"):
        _card(trained_model, mean=(0.1, 0.2, 0.3))
    with pytest.raises(ConfigError, match=r"class colour \(300, 0, 0\)"):
        _card(trained_model, class_colors=((300, 0, 0), *COLORS[1:]))
    four_classes = _card(trained_model, class_names=(*CLASSES, "car"), class_colors=(*COLORS, (255, 255, 0)))
    with pytest.raises(ConfigError, match="the card has 4 classes and 4 bands, the model 3 and 4"):
        save_checkpoint(trained_model, tmp_path / "x.ckpt", four_classes)
