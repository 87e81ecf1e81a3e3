"""The model registry and preset sizes."""

from __future__ import annotations

import pytest

from cmt_geo.errors import ConfigError
from cmt_geo.models import create_model, list_models
from cmt_geo.models.registry import preset_config

REFERENCE_TRAINABLE_PARAMETERS = 135_320_743  # the public reference CMT-UNet (ResNet-50), 6 classes


def _parameters(name: str, **overrides: object) -> int:
    return sum(p.numel() for p in create_model(name, num_classes=6, **overrides).parameters())


def test_list_models_names_every_preset() -> None:
    assert list_models() == ["cmt_unet_base", "cmt_unet_small", "cmt_unet_tiny", "unet", "unetformer"]


def test_unknown_model_lists_the_valid_names() -> None:
    with pytest.raises(ConfigError, match=r"unknown model 'cmt_unet_huge'; choose one of \['cmt_unet_base'"):
        create_model("cmt_unet_huge", num_classes=6)


def test_unknown_override_lists_the_valid_options() -> None:
    with pytest.raises(ConfigError, match=r"unknown model option\(s\) \['use_msa'\]; valid options: .*'use_msaa'"):
        create_model("cmt_unet_tiny", num_classes=6, use_msa=True)


def test_unknown_override_lists_runtime_options_too() -> None:
    with pytest.raises(ConfigError, match=r"unknown model option\(s\) \['scan'\]; valid options: .*'scan_backend'"):
        create_model("cmt_unet_tiny", num_classes=6, scan="torch")


@pytest.mark.parametrize(("num_classes", "in_channels"), [(0, 3), (6, 0), (1.5, 3), (6, 2.5), (True, 3)])
def test_class_and_band_counts_must_be_positive_integers(num_classes: int, in_channels: int) -> None:
    with pytest.raises(
        ConfigError,
        match=rf"num_classes and in_channels must be integers of at least 1, got {num_classes} and {in_channels}",
    ):
        create_model("unet", num_classes=num_classes, in_channels=in_channels)


def test_overrides_reach_the_model() -> None:
    model = create_model(
        "cmt_unet_tiny", num_classes=6, use_msaa=True, use_rcm=True, gradient_checkpointing=True, scan_backend="torch"
    )
    assert model.architecture == "cmt_unet_tiny"
    assert model.config is not None
    assert model.config.use_msaa
    assert model.encoder.mamba.stages[0][0].mixer.scan_backend == "torch"
    assert model.decoder.msaa is not None
    assert model.decoder.rcm is not None
    assert model.encoder.mamba.gradient_checkpointing


def test_cmt_unet_base_has_the_reference_parameter_count_and_drop_path() -> None:
    """The reference counts 135,460,007 parameters: these plus 139,264 fixed Haar filter values it stores as
    parameters that do not train."""
    model = create_model("cmt_unet_base", num_classes=6)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == REFERENCE_TRAINABLE_PARAMETERS
    assert sum(p.numel() for p in model.parameters()) == REFERENCE_TRAINABLE_PARAMETERS
    last_block = model.encoder.mamba.stages[-1][-1]
    assert last_block.drop_path.drop_prob == pytest.approx(0.2)  # rising linearly to the reference's 0.2


def test_presets_are_ordered_by_size() -> None:
    assert preset_config("cmt_unet_base").backbone == "resnet50"
    assert preset_config("cmt_unet_small").backbone == "resnet18"
    assert _parameters("cmt_unet_tiny") < _parameters("cmt_unet_small")
    assert _parameters("unetformer") < _parameters("cmt_unet_tiny")


def test_ablation_switches_change_the_parameter_count() -> None:
    base = _parameters("cmt_unet_tiny")
    assert _parameters("cmt_unet_tiny", use_msaa=True) > base
    assert _parameters("cmt_unet_tiny", use_rcm=True) > base
