"""Conversion of the reference CMT-UNet's weights: the key map against the reference's manifest, the forms a saved
file takes, every refusal, and a converted checkpoint that loads and predicts as the weights it came from."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import Tensor

from cmt_geo.errors import CheckpointError, ConfigError, OutputExistsError
from cmt_geo.models import SegmentationModel, convert_reference_checkpoint, create_model, load_checkpoint
from cmt_geo.models.reference import (
    convert_reference_state_dict,
    read_reference_state_dict,
    reference_config,
    reference_key_to_ours,
)
from cmt_geo.models.registry import preset_config

from .reference_fixtures import (
    CONSTANT,
    TRUNK_ALIAS,
    canonical_trunk_name,
    read_manifest,
    reference_layout,
    synthetic_reference_state,
)

#: Pairs written out by hand from both implementations, one per kind of module, independent of the map's rules.
HAND_MAPPED = {
    "backbone.layer3.5.bn3.running_var": "encoder.resnet.body.layer3.5.bn3.running_var",
    "layers.3.2.conv2.weight": "encoder.resnet.body.layer4.2.conv2.weight",
    "stem.1.weight": "encoder.mamba.stem.1.weight",
    "vssm_encoder.patch_embed.norm.bias": "encoder.mamba.patch_norm.bias",
    "vssm_encoder.layers.2.blocks.8.self_attention.A_logs": "encoder.mamba.stages.2.8.mixer.A_logs",
    "vssm_encoder.layers.1.blocks.0.ln_1.weight": "encoder.mamba.stages.1.0.norm.weight",
    "vssm_encoder.downsamples.2.reduction.weight": "encoder.mamba.downsamples.2.reduction.weight",
    "Fuse.1.normy.running_mean": "encoder.fusions.1.context_norm.running_mean",
    "Fuse.2.attn.qkv.0.weight": "encoder.fusions.2.attn.attention.qkv.weight",
    "Fuse.3.attn.proj.depthwise.wavelet_scale.0.weight": "encoder.fusions.3.attn.proj.0.wavelet_scales.0",
    "Fuse.0.attn.proj.pointwise.weight": "encoder.fusions.0.attn.proj.1.weight",
    "decoder.b4.attn.eca_layer.conv.weight": "decoder.blocks.0.attn.channel.conv.weight",
    "decoder.b2.attn.global_local_attention.relative_position_bias_table": (
        "decoder.blocks.2.attn.global_local.attention.relative_position_bias_table"
    ),
    "decoder.p3.pre_conv.0.weight": "decoder.fusions.0.pre_conv.weight",
    "decoder.p2.post_conv.0.base_scale.weight": "decoder.fusions.1.post_conv.0.base_scale",
    "decoder.p1.ca.3.0.weight": "decoder.refine.channel_attention.3.weight",
    "decoder.p1.proj.depthwise.base_conv.bias": "decoder.refine.proj.0.base_conv.bias",
    "decoder.segmentation_head.0.1.running_var": "decoder.head.0.1.running_var",
    "decoder.segmentation_head.2.0.weight": "decoder.head.2.weight",
}


@pytest.fixture(scope="module")
def base_model() -> SegmentationModel:
    return create_model("cmt_unet_base", num_classes=6)


@pytest.fixture(scope="module")
def reference_state() -> dict[str, Tensor]:
    return synthetic_reference_state()


@pytest.fixture(scope="module")
def tiny_reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SegmentationModel]:
    """A cmt_unet_tiny-sized state dict in the reference's layout, saved as its training saves it."""
    torch.manual_seed(0)
    model = create_model("cmt_unet_tiny", num_classes=3).eval()
    path = tmp_path_factory.mktemp("reference") / "weights.pth"
    torch.save(reference_layout(model), path)
    return path, model


def test_the_manifest_is_the_reference_cmt_unet_base() -> None:
    manifest = read_manifest()
    assert len(manifest) == 1221
    trainable = [name for name in manifest if not (CONSTANT.fullmatch(name) or TRUNK_ALIAS.match(name))]
    parameters = [name for name in trainable if not name.endswith(("running_mean", "running_var", "batches_tracked"))]
    assert sum(torch.Size(manifest[name][0]).numel() for name in parameters) == 135_320_743


def test_every_reference_weight_maps_onto_one_weight_of_ours_of_the_same_shape(base_model: SegmentationModel) -> None:
    ours = {name: tuple(tensor.shape) for name, tensor in base_model.state_dict().items()}
    mapped: dict[str, str] = {}
    for name, (shape, _) in read_manifest().items():
        if CONSTANT.fullmatch(name):
            continue
        if TRUNK_ALIAS.match(name):
            assert read_manifest()[canonical_trunk_name(name)][0] == shape
            continue
        target = reference_key_to_ours(name)
        assert target in ours, f"{name} -> {target}"
        assert ours[target] == shape, name
        assert target not in mapped, f"{name} and {mapped.get(target)} both map to {target}"
        mapped[target] = name
    assert set(mapped) == set(ours)
    for name, target in HAND_MAPPED.items():
        assert reference_key_to_ours(canonical_trunk_name(name) if TRUNK_ALIAS.match(name) else name) == target


def test_a_reference_state_dict_converts_to_the_same_tensors(
    base_model: SegmentationModel, reference_state: dict[str, Tensor]
) -> None:
    assert reference_config(reference_state) == (preset_config("cmt_unet_base"), 6, 3)
    converted = convert_reference_state_dict(reference_state, base_model)
    assert base_model.load_state_dict(converted, strict=True)  # no missing or unexpected keys
    loaded = base_model.state_dict()
    for name, value in reference_state.items():
        if not (CONSTANT.fullmatch(name) or TRUNK_ALIAS.match(name)):
            assert torch.equal(loaded[reference_key_to_ours(name)], value), name
    for name, target in HAND_MAPPED.items():
        assert torch.equal(loaded[target], reference_state[name]), name


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda state: state.update({"decoder.aux_head.conv.weight": torch.zeros(1)}),
            r"1 reference keys without a counterpart: decoder\.aux_head\.conv\.weight",
        ),
        (
            lambda state: state.pop("decoder.b4.attn.eca_layer.conv.weight"),
            r"1 weights of cmt_unet_base without a source: decoder\.blocks\.0\.attn\.channel\.conv\.weight",
        ),
        (
            lambda state: state.update({"decoder.p1.weights": torch.ones(3)}),
            r"1 shapes that differ: decoder\.p1\.weights \(3,\) vs decoder\.refine\.weights \(2,\)",
        ),
        (
            lambda state: state.update({"Fuse.0.attn.proj.depthwise.wt_filter": torch.zeros(1024, 1, 2, 2)}),
            r"1 stored constants that differ from the db1 filters and window index: Fuse\.0\.attn\.proj",
        ),
        (
            lambda state: state.update({"layers.0.0.conv1.weight": torch.zeros(64, 64, 1, 1)}),
            r"two registrations of the ResNet trunk .* differ at backbone\.layer1\.0\.conv1\.weight",
        ),
    ],
    ids=["extra key", "missing key", "shape", "constant", "trunk copies"],
)
def test_weights_that_do_not_map_completely_are_refused_with_the_keys_listed(
    base_model: SegmentationModel, reference_state: dict[str, Tensor], change: object, message: str
) -> None:
    state = dict(reference_state)
    change(state)  # type: ignore[operator]
    with pytest.raises(CheckpointError, match=message):
        convert_reference_state_dict(state, base_model)


class Hyperparameters:
    """A pickled Python object, as a Lightning checkpoint holds."""


SMALL_STATE = {"backbone.conv1.weight": torch.ones(2), "decoder.segmentation_head.2.0.weight": torch.zeros(3)}


@pytest.mark.parametrize(
    "saved",
    [
        SMALL_STATE,
        {"state_dict": {f"net.{key}": value for key, value in SMALL_STATE.items()}, "epoch": 7},
        {"model": {f"module.{key}": value for key, value in SMALL_STATE.items()}},
    ],
    ids=["state dict", "lightning", "data parallel"],
)
def test_the_forms_a_reference_training_saves_are_read(tmp_path: Path, saved: dict[str, object]) -> None:
    torch.save(saved, tmp_path / "weights.pth")
    state = read_reference_state_dict(tmp_path / "weights.pth")
    assert list(state) == list(SMALL_STATE)
    assert all(torch.equal(state[key], SMALL_STATE[key]) for key in state)


@pytest.mark.parametrize(
    ("saved", "message"),
    [
        ({"state_dict": SMALL_STATE, "hyper_parameters": Hyperparameters()}, "not unpickled for safety"),
        ({"encoder.weight": torch.ones(1)}, "holds no CMT-UNet reference weights"),
        (
            {
                "state_dict": {
                    **{f"net.{key}": value for key, value in SMALL_STATE.items()},
                    "loss.weight": torch.ones(1),
                }
            },
            r"not weights of the reference model \(prefix 'net\.'\): loss\.weight",
        ),
    ],
    ids=["pickled objects", "other model", "foreign entries"],
)
def test_files_that_are_not_reference_weights_are_refused(tmp_path: Path, saved: object, message: str) -> None:
    torch.save(saved, tmp_path / "weights.pth")
    with pytest.raises(CheckpointError, match=message):
        read_reference_state_dict(tmp_path / "weights.pth")
    (tmp_path / "broken.pth").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match=r"cannot read .* as a torch file"):
        read_reference_state_dict(tmp_path / "broken.pth")


def test_a_converted_checkpoint_loads_and_predicts_as_its_weights(
    tmp_path: Path, tiny_reference: tuple[Path, SegmentationModel]
) -> None:
    source, model = tiny_reference
    written = convert_reference_checkpoint(source, tmp_path / "model.ckpt", class_names=("a", "b", "c"))
    loaded, card = load_checkpoint(written)
    assert (card.architecture, card.class_names) == ("cmt_unet_tiny", ("a", "b", "c"))
    assert card.band_names == ("band_1", "band_2", "band_3")
    assert (card.normalization.mean, card.normalization.std, card.patch_size) == ((0.0,) * 3, (255.0,) * 3, 256)
    x = torch.randn(1, 3, 64, 96)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    with pytest.raises(OutputExistsError, match="pass --overwrite"):
        convert_reference_checkpoint(source, written)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"num_classes": 6}, r"holds a model of 3 classes, but num_classes gives 6"),
        ({"class_names": ("a", "b")}, r"but the class names gives 2"),
        ({"bands": ("r", "g")}, r"the weights take 3 bands, but bands has 2 values \('r', 'g'\)"),
        ({"mean": (1.0, 2.0, 3.0)}, "give mean and std together"),
    ],
)
def test_options_that_contradict_the_weights_are_refused(
    tmp_path: Path, tiny_reference: tuple[Path, SegmentationModel], options: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        convert_reference_checkpoint(tiny_reference[0], tmp_path / "model.ckpt", **options)  # type: ignore[arg-type]
    assert not (tmp_path / "model.ckpt").exists()


REFERENCE_DIR = os.environ.get("CMT_GEO_REFERENCE_DIR")


@pytest.mark.slow
@pytest.mark.skipif(
    not REFERENCE_DIR or importlib.util.find_spec("pytorch_wavelets") is None,
    reason="set CMT_GEO_REFERENCE_DIR to a checkout of XUE-YYC/CMT-UNet and install pytorch_wavelets",
)
def test_converted_reference_weights_give_the_reference_logits() -> None:
    script = Path(__file__).parents[2] / "benchmarks" / "reference_parity.py"
    result = subprocess.run(
        [sys.executable, str(script), "--reference-dir", str(REFERENCE_DIR), "--batch", "1"],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    parity = json.loads(result.stdout.strip().splitlines()[-1])
    assert parity["reference_trainable_params"] == parity["ours_params"] == 135_320_743
    assert parity["relative_diff"] <= 1e-4
    assert parity["argmax_agreement"] >= 0.999
