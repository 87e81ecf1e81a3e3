"""The training config: typed sections, unknown keys named with the valid ones, `--set` overrides, round trips."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cmt_geo.errors import ConfigError
from cmt_geo.training.config import TrainConfig, apply_overrides, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
RASTER = {"dataset": "raster", "root": "data/x", "classes": ["a", "b"]}


def write(path: Path, values: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.mark.parametrize("name", ["synthetic", "vaihingen", "potsdam", "uavid", "loveda", "raster"])
def test_shipped_configs_load(name: str) -> None:
    config = load_config(CONFIGS / f"{name}.yaml")
    assert config.data.dataset == ("raster" if name in ("synthetic", "raster") else name)


def test_published_recipes_use_the_published_hyperparameters() -> None:
    config = load_config(CONFIGS / "vaihingen.yaml")
    assert (config.data.patch_size, config.data.batch_size) == (512, 8)
    assert (config.optim.name, config.optim.lr, config.optim.weight_decay) == ("adamw", 6e-4, 0.01)
    assert (config.schedule.name, config.schedule.restart_cycles, config.schedule.restart_mult) == (
        "cosine_restarts",
        3,
        2.0,
    )
    assert (config.loss.name, config.loss.label_smoothing, config.loss.deep_supervision) == ("ce_dice", 0.05, True)
    assert config.trainer.max_epochs == 105


def test_unknown_keys_and_sections_name_the_close_match_and_the_valid_ones(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", {"data": {**RASTER, "patch_sise": 256}})
    with pytest.raises(ConfigError, match=r"unknown key 'data.patch_sise' \(did you mean data.patch_size\?\)") as error:
        load_config(path)
    assert "valid keys: dataset, root," in str(error.value)
    assert str(path) in str(error.value)
    with pytest.raises(
        ConfigError, match=r"unknown section 'optimizer' \(did you mean optim\?\); valid sections: model, data"
    ):
        load_config(write(tmp_path / "d.yaml", {"data": RASTER, "optimizer": {"lr": 1}}))
    with pytest.raises(ConfigError, match=r"did you mean trainer.max_steps"):
        load_config(write(tmp_path / "e.yaml", {"data": RASTER}), ["trainer.max_step=3"])
    with pytest.raises(
        ConfigError, match=r"unknown model.architecture 'cmt_unet_tin' \(did you mean cmt_unet_tiny\?\)"
    ):
        load_config(write(tmp_path / "f.yaml", {"data": RASTER, "model": {"architecture": "cmt_unet_tin"}}))
    with pytest.raises(ConfigError, match=r"unknown key 'model.options.use_msa' \(did you mean model.options.use_msaa"):
        load_config(write(tmp_path / "g.yaml", {"data": RASTER, "model": {"options": {"use_msa": True}}}))


def test_values_are_type_checked_and_dataset_keys_belong_to_their_dataset(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", {"data": RASTER})
    with pytest.raises(ConfigError, match=r"data.patch_size must be an integer, got 'big'"):
        load_config(path, ["data.patch_size=big"])
    with pytest.raises(ConfigError, match=r"trainer.precision must be one of"):
        load_config(path, ["trainer.precision=bf16"])
    with pytest.raises(ConfigError, match=r"data.scene applies to loveda, not raster"):
        load_config(path, ["data.scene=urban"])
    with pytest.raises(ConfigError, match=r"model option dropout must be a finite number"):
        load_config(path, ["model.options={dropout: high}"])
    with pytest.raises(ConfigError, match=r"section data needs dataset, root"):
        load_config(write(tmp_path / "d.yaml", {"data": {"patch_size": 64}}))
    with pytest.raises(ConfigError, match=r"no data section"):
        load_config(write(tmp_path / "e.yaml", {"model": {}}))
    with pytest.raises(ConfigError, match=r"set max_epochs .* or max_steps"):
        load_config(path, ["trainer.max_epochs=null"])


def test_overrides_take_yaml_scalars() -> None:
    values = apply_overrides({"data": dict(RASTER)}, ["trainer.max_steps=20", "optim.lr=1e-3", "data.val_tiles=[a, b]"])
    config = TrainConfig.from_dict(values | {"trainer": {**values["trainer"]}})
    assert config.trainer.max_steps == 20
    assert config.optim.lr == 1e-3
    assert config.data.val_tiles == ("a", "b")
    assert TrainConfig.from_dict(apply_overrides(values, ["trainer.precision=32"])).trainer.precision == "32"
    tiles = apply_overrides({}, ["data.val_tiles=[2_10, 7_10]", "data.exclude_tiles=[1:20]"])["data"]
    assert tiles == {"val_tiles": ["2_10", "7_10"], "exclude_tiles": ["1:20"]}  # tile names, not YAML 1.1 numbers
    for bad in ("trainer.max_steps", "max_steps=3", "trainer.max.steps=3"):
        with pytest.raises(ConfigError, match=r"is not section.key=value; write e.g. --set trainer.max_steps=20"):
            apply_overrides({}, [bad])


def test_saved_config_loads_back_to_the_same_config(tmp_path: Path) -> None:
    config = load_config(CONFIGS / "synthetic.yaml", ["loss.class_weights=[1, 2, 3, 4, 5, 6]", "augment.hue=0.1"])
    again = load_config(config.save(tmp_path / "saved.yaml"))
    assert again == config
    assert again.override([]) == config
