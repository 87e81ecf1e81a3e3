"""The training configuration: typed sections read from YAML, `--set section.key=value` overrides, the saved copy.

A config file is a mapping of sections (model, data, augment, loss, optim, schedule, trainer, checkpoint, logging,
finetune), each a mapping of keys. Only `data` is required. An unknown or misspelled section or key is an error
that names the valid ones (and the close match); every value is checked against its type when the config loads.

>>> config = load_config("configs/synthetic.yaml", ["trainer.max_steps=20", "optim.lr=1e-3"])
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Literal, get_type_hints

import yaml

from cmt_geo.card import ArchitectureArgs
from cmt_geo.data.augment import AugmentConfig
from cmt_geo.data.registry import DatasetName
from cmt_geo.errors import ConfigError, DatasetNotFoundError
from cmt_geo.io.outputs import atomic_output
from cmt_geo.validation import coerce

LossName = Literal["ce", "dice", "ce_dice", "focal"]
ScheduleName = Literal["constant", "cosine", "poly", "multistep", "cosine_restarts"]
Precision = Literal["auto", "32", 32, "bf16-mixed", "16-mixed"]  # YAML reads `precision: 32` as a number
ValidationSplit = Literal["auto", "tiles", "blocks"]


class _Loader(yaml.SafeLoader):
    """YAML read with YAML 1.2's numbers: 1e-3 is a float, and 7_10 or 1:20 stay text (a tile name, not 710 or
    80 as PyYAML's YAML 1.1 reads them)."""


_INT = "tag:yaml.org,2002:int"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != _INT]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_INT, re.compile(r"^[-+]?[0-9]+$"), list("-+0123456789"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def _read_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # a SafeLoader: plain data only


def _check_types(section: object, name: str) -> None:
    """Check and normalize every field of a frozen section against its annotation (errors name `name.key`)."""
    hints = get_type_hints(type(section))
    for item in fields(section):  # type: ignore[arg-type]
        value = coerce(f"{name}.{item.name}", getattr(section, item.name), hints[item.name])
        object.__setattr__(section, item.name, value)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


@dataclass(frozen=True)
class ModelSection:
    """Which model to train.

    Args:
        architecture: a registered model (see `cmt_geo.models.list_models()`), e.g. "cmt_unet_base".
        options: `ModelConfig` fields to change (e.g. use_msaa: true) and runtime options (scan_backend,
            gradient_checkpointing, fused_attention, pretrained_backbone).
    """

    architecture: str = "cmt_unet_tiny"
    options: ArchitectureArgs | dict = field(default_factory=lambda: ArchitectureArgs({}))

    def __post_init__(self) -> None:
        if not isinstance(self.options, ArchitectureArgs):  # a mapping from YAML: kept immutable
            object.__setattr__(self, "options", ArchitectureArgs(self.options))
        _check_types(self, "model")
        from cmt_geo.models.registry import list_models, preset_config
        from cmt_geo.models.segmentation import ARCHITECTURE_OPTIONS, RUNTIME_OPTIONS, RuntimeOptions

        if self.architecture not in list_models():
            raise ConfigError(_unknown("model.architecture", self.architecture, list_models(), what="value"))
        for key in self.options:
            if key not in ARCHITECTURE_OPTIONS | RUNTIME_OPTIONS:
                raise ConfigError(_unknown("model.options", key, sorted(ARCHITECTURE_OPTIONS | RUNTIME_OPTIONS)))
        architecture = {k: v for k, v in self.options.items() if k in ARCHITECTURE_OPTIONS}
        dataclasses.replace(preset_config(self.architecture), **architecture)  # checks every value's type
        RuntimeOptions(**{k: v for k, v in self.options.items() if k in RUNTIME_OPTIONS})


#: Data keys that only some datasets take (the others are shared by every dataset).
DATASET_KEYS: dict[str, frozenset[str]] = {
    "vaihingen": frozenset({"band_order", "label_kind", "exclude_tiles"}),
    "potsdam": frozenset({"band_order", "label_kind", "exclude_tiles"}),
    "uavid": frozenset(),
    "loveda": frozenset({"scene"}),
    "raster": frozenset(
        {
            "labels",
            "classes",
            "colors",
            "class_column",
            "background",
            "nodata",
            "bands",
            "crs",
            "res",
            "test_images",
            "label_nodata",
        }
    ),
}


@dataclass(frozen=True)
class DataSection:
    """Which dataset to train on, how validation is carved from its training data, and how patches are drawn.

    Args:
        dataset: a registered dataset name: vaihingen, potsdam, uavid, loveda or raster.
        root: the unpacked dataset folder; for "raster", the image GeoTIFF(s), their folder, or a folder holding
            `images/` and `labels/`.
        band_order: ISPRS band order ("IRRG", "RGB", "RGBIR"); the dataset's default when null.
        label_kind: ISPRS labels: "auto" (eroded for test, full otherwise), "full" or "eroded".
        exclude_tiles: ISPRS tiles never loaded (e.g. Potsdam's 7_10).
        scene: LoveDA scenes: "urban", "rural" or "both".
        labels: raster: class rasters (file or folder) or one vector file of class polygons.
        classes: raster: class names in index order.
        colors: raster: one [R, G, B] per class; spread over the hue circle when null.
        class_column: raster with vector labels: the attribute holding each polygon's class.
        background: raster with vector labels: the class outside every polygon; ignored when null.
        nodata: raster: image no-data value; the rasters' own when null.
        bands: raster: 1-based image bands to read; all when null.
        crs: raster: dataset CRS (e.g. "EPSG:32632"); the first raster's when null.
        res: raster: dataset resolution in CRS units; the first raster's when null.
        test_images: raster: file stems of the images held out as the test split.
        label_nodata: raster: a label no-data value that is a class index is kept as that "class" or "ignore"d.
        unknown_labels: a label colour or value that is not a class: "error", or "ignore" the pixels.
        val_split: how validation is carved from the training data: "tiles" (whole tiles or sequences), "blocks"
            (square blocks inside the tiles, with a gap) or "auto" (blocks when there is one training tile).
        val_fraction: share of tiles (or blocks) that become validation; 0 trains on everything, without
            validation (then no best checkpoint).
        val_tiles: explicit validation tiles (tile mode); overrides val_fraction.
        val_block_size: validation block side in pixels (block mode).
        val_gap: pixels between a validation block and any training patch (block mode).
        split_seed: seeds the carving, apart from the training seed, so every run validates on the same data.
        patch_size: training and validation patch side in pixels.
        batch_size: patches per batch and process.
        val_batch_size: patches per validation batch; batch_size when null.
        samples_per_epoch: training patches per epoch over all processes; about the non-overlapping patches of
            the training tiles when null.
        num_workers: data loader worker processes per training process.
        normalization_samples: validation-grid patches of the training split read to estimate band means and stds
            (and class frequencies).
        ground_sample_distance: pixel size in metres, recorded in the checkpoint; the dataset's when it has a
            projected CRS in metres, else unknown, when null.
    """

    dataset: DatasetName
    root: str
    band_order: Literal["IRRG", "RGB", "RGBIR"] | None = None
    label_kind: Literal["auto", "full", "eroded"] = "auto"
    exclude_tiles: tuple[str, ...] = ()
    scene: Literal["urban", "rural", "both"] = "both"
    labels: str | None = None
    classes: tuple[str, ...] = ()
    colors: tuple[tuple[int, int, int], ...] | None = None
    class_column: str = "class"
    background: int | None = None
    nodata: float | None = None
    bands: tuple[int, ...] | None = None
    crs: str | None = None
    res: float | None = None
    test_images: tuple[str, ...] = ()
    label_nodata: Literal["class", "ignore"] = "class"
    unknown_labels: Literal["error", "ignore"] = "error"
    val_split: ValidationSplit = "auto"
    val_fraction: float = 0.125
    val_tiles: tuple[str, ...] | None = None
    val_block_size: int = 1024
    val_gap: int = 64
    split_seed: int = 0
    patch_size: int = 512
    batch_size: int = 8
    val_batch_size: int | None = None
    samples_per_epoch: int | None = None
    num_workers: int = 4
    normalization_samples: int = 256
    ground_sample_distance: float | None = None

    def __post_init__(self) -> None:
        _check_types(self, "data")
        for key, default in DATASET_DEFAULTS.items():
            if key not in DATASET_KEYS[self.dataset] and getattr(self, key) != default:
                takers = sorted(name for name, keys in DATASET_KEYS.items() if key in keys)
                raise ConfigError(f"data.{key} applies to {', '.join(takers)}, not {self.dataset}; remove it")
        _require(bool(self.root), "data.root is empty; give the dataset folder")
        if self.dataset == "raster":
            _require(bool(self.classes), "data.classes is empty; the raster dataset needs its class names in order")
        _require(0 <= self.val_fraction < 1, f"data.val_fraction={self.val_fraction} must be in [0, 1), e.g. 0.125")
        for key in ("patch_size", "batch_size", "val_block_size", "normalization_samples"):
            _require(getattr(self, key) >= 1, f"data.{key}={getattr(self, key)} must be at least 1")
        for key in ("val_batch_size", "samples_per_epoch"):
            value = getattr(self, key)
            _require(value is None or value >= 1, f"data.{key}={value} must be at least 1 or null")
        _require(self.num_workers >= 0, f"data.num_workers={self.num_workers} must be 0 or more")
        _require(self.val_gap >= 0, f"data.val_gap={self.val_gap} must be 0 or more pixels")
        _require(
            self.ground_sample_distance is None or self.ground_sample_distance > 0,
            f"data.ground_sample_distance={self.ground_sample_distance} must be a positive size in metres or null",
        )

    def check_exists(self) -> None:
        """Raise `DatasetNotFoundError` when the dataset folder (or raster images or labels) does not exist."""
        for key in ("root", "labels"):
            path = getattr(self, key)
            if path is not None and not Path(path).expanduser().exists():
                raise DatasetNotFoundError(
                    f"data.{key} {path} does not exist; point it at the {self.dataset} dataset "
                    f"(--set data.{key}=PATH, or TrainConfig.data.{key})"
                )


#: Default of every dataset-specific data key.
DATASET_DEFAULTS = {
    item.name: item.default for item in fields(DataSection) if any(item.name in keys for keys in DATASET_KEYS.values())
}


@dataclass(frozen=True)
class LossSection:
    """The training loss. Pixels labelled `cmt_geo.card.IGNORE_INDEX` never count.

    Args:
        name: "ce" (cross-entropy), "dice" (soft Dice over the classes present), "ce_dice" (their weighted sum) or
            "focal" (per-pixel focal loss).
        class_weights: one weight per class, "auto" (inverse square root of each class's pixel share in the
            training data) or null (all 1).
        label_smoothing: share of each target spread over all classes (cross-entropy and focal), in [0, 1).
        focal_gamma: focusing exponent of the focal loss.
        dice_smooth: smoothing added to the Dice numerator and denominator.
        ce_weight: weight of the cross-entropy term in "ce_dice".
        dice_weight: weight of the Dice term in "ce_dice".
        deep_supervision: add auxiliary heads on the encoder features at strides 8 and 16 (training only).
        aux_weight: weight of each auxiliary loss.
    """

    name: LossName = "ce_dice"
    class_weights: tuple[float, ...] | Literal["auto"] | None = None
    label_smoothing: float = 0.0
    focal_gamma: float = 2.0
    dice_smooth: float = 0.05
    ce_weight: float = 1.0
    dice_weight: float = 1.0
    deep_supervision: bool = False
    aux_weight: float = 0.4

    def __post_init__(self) -> None:
        _check_types(self, "loss")
        _require(0 <= self.label_smoothing < 1, f"loss.label_smoothing={self.label_smoothing} must be in [0, 1)")
        if isinstance(self.class_weights, tuple):
            _require(
                all(w >= 0 for w in self.class_weights) and any(self.class_weights),
                f"loss.class_weights={list(self.class_weights)} must be non-negative, not all 0",
            )
        for key in ("focal_gamma", "dice_smooth", "ce_weight", "dice_weight", "aux_weight"):
            _require(getattr(self, key) >= 0, f"loss.{key}={getattr(self, key)} must be 0 or more")


@dataclass(frozen=True)
class OptimSection:
    """The optimizer.

    Args:
        name: "adamw" or "sgd".
        lr: peak learning rate.
        weight_decay: decoupled (AdamW) or L2 (SGD) weight decay.
        betas: AdamW betas.
        momentum: SGD momentum.
        nesterov: SGD Nesterov momentum.
        backbone_lr_factor: learning-rate multiplier of the ResNet trunk (0.1 in the published recipes, whose
            trunk starts from ImageNet weights).
    """

    name: Literal["adamw", "sgd"] = "adamw"
    lr: float = 6e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = 0.9
    nesterov: bool = False
    backbone_lr_factor: float = 1.0

    def __post_init__(self) -> None:
        _check_types(self, "optim")
        _require(self.lr > 0, f"optim.lr={self.lr} must be positive, e.g. 6e-4")
        _require(self.weight_decay >= 0, f"optim.weight_decay={self.weight_decay} must be 0 or more")
        _require(all(0 <= b < 1 for b in self.betas), f"optim.betas={list(self.betas)} must be in [0, 1)")
        _require(0 <= self.momentum < 1, f"optim.momentum={self.momentum} must be in [0, 1)")
        _require(self.backbone_lr_factor >= 0, f"optim.backbone_lr_factor={self.backbone_lr_factor} must be >= 0")


@dataclass(frozen=True)
class ScheduleSection:
    """The learning-rate schedule, per optimizer step: a linear warm-up, then the chosen decay.

    Args:
        name: "constant", "cosine", "poly", "multistep" or "cosine_restarts" (SGDR: cosine cycles, each
            `restart_mult` times longer than the last, filling the training after the warm-up).
        warmup_fraction: share of all steps spent rising linearly to the peak, in [0, 1).
        min_lr_ratio: the floor of cosine and poly decay, as a share of the peak.
        poly_power: exponent of poly decay.
        milestones: multistep: where the rate is multiplied by `gamma`, as shares of the steps after warm-up.
        gamma: multistep factor.
        restart_cycles: cosine_restarts: number of cycles.
        restart_mult: cosine_restarts: length ratio of consecutive cycles (T_mult).
    """

    name: ScheduleName = "cosine"
    warmup_fraction: float = 0.0
    min_lr_ratio: float = 0.0
    poly_power: float = 0.9
    milestones: tuple[float, ...] = (0.6, 0.85)
    gamma: float = 0.1
    restart_cycles: int = 3
    restart_mult: float = 2.0

    def __post_init__(self) -> None:
        _check_types(self, "schedule")
        _require(0 <= self.warmup_fraction < 1, f"schedule.warmup_fraction={self.warmup_fraction} must be in [0, 1)")
        _require(0 <= self.min_lr_ratio <= 1, f"schedule.min_lr_ratio={self.min_lr_ratio} must be in [0, 1]")
        _require(
            all(0 < m < 1 for m in self.milestones) and list(self.milestones) == sorted(self.milestones),
            f"schedule.milestones={list(self.milestones)} must rise within (0, 1), e.g. [0.6, 0.85]",
        )
        _require(self.restart_cycles >= 1, f"schedule.restart_cycles={self.restart_cycles} must be at least 1")
        _require(self.restart_mult >= 1, f"schedule.restart_mult={self.restart_mult} must be at least 1")
        _require(self.poly_power > 0 and self.gamma > 0, "schedule.poly_power and schedule.gamma must be positive")


@dataclass(frozen=True)
class TrainerSection:
    """How long and where to train.

    Args:
        max_epochs: epochs to train; null when max_steps decides.
        max_steps: optimizer steps to train; -1 when max_epochs decides (the first limit reached stops).
        max_minutes: also stop after this many minutes (the schedule still runs over max_steps or max_epochs).
        accelerator: "auto", "cpu", "gpu", "cuda" or "mps".
        devices: devices per node (a number) or "auto"; "auto" under torchrun takes its processes per node (under
            SLURM's srun, give devices and num_nodes as the job has them).
        num_nodes: machines.
        strategy: "auto" (DDP when there are several devices) or "ddp".
        precision: "auto" (bf16-mixed on CUDA, 32 elsewhere), "32", "bf16-mixed" or "16-mixed".
        accumulate_grad_batches: batches whose gradients add up before each optimizer step.
        gradient_clip_val: clip the gradient norm (or values) to this; null: no clipping.
        gradient_clip_algorithm: "norm" or "value".
        seed: seeds weights, sampling, augmentation and dropout.
        deterministic: use deterministic algorithms (slower); on a GPU, the few ops without one (the backward of
            bilinear upsampling) warn instead of failing.
        val_every_n_epochs: validate every this many epochs.
        val_every_n_batches: validate every this many training batches instead (and at the end).
        compile: torch.compile the model (GPU; a first slow step compiles it).
    """

    max_epochs: int | None = None
    max_steps: int = -1
    max_minutes: float | None = None
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "auto"
    devices: int | Literal["auto"] = "auto"
    num_nodes: int = 1
    strategy: Literal["auto", "ddp"] = "auto"
    precision: Precision = "auto"
    accumulate_grad_batches: int = 1
    gradient_clip_val: float | None = None
    gradient_clip_algorithm: Literal["norm", "value"] = "norm"
    seed: int = 0
    deterministic: bool = False
    val_every_n_epochs: int = 1
    val_every_n_batches: int | None = None
    compile: bool = False

    def __post_init__(self) -> None:
        _check_types(self, "trainer")
        object.__setattr__(self, "precision", str(self.precision))
        _require(
            self.max_steps >= 1 or (self.max_steps == -1 and self.max_epochs is not None),
            f"trainer.max_steps={self.max_steps} with max_epochs={self.max_epochs}: set max_epochs (e.g. 100) or "
            "max_steps (e.g. --set trainer.max_steps=1000)",
        )
        _require(self.max_epochs is None or self.max_epochs >= 1, f"trainer.max_epochs={self.max_epochs} must be >= 1")
        _require(self.max_minutes is None or self.max_minutes > 0, "trainer.max_minutes must be positive or null")
        _require(self.devices == "auto" or self.devices >= 1, f"trainer.devices={self.devices} must be >= 1 or auto")
        for key in ("num_nodes", "accumulate_grad_batches", "val_every_n_epochs"):
            _require(getattr(self, key) >= 1, f"trainer.{key}={getattr(self, key)} must be at least 1")
        _require(self.seed >= 0, f"trainer.seed={self.seed} must be 0 or more")
        _require(
            self.gradient_clip_val is None or self.gradient_clip_val > 0,
            f"trainer.gradient_clip_val={self.gradient_clip_val} must be positive or null",
        )
        _require(
            self.val_every_n_batches is None or self.val_every_n_batches >= 1,
            f"trainer.val_every_n_batches={self.val_every_n_batches} must be at least 1 or null",
        )


@dataclass(frozen=True)
class CheckpointSection:
    """When checkpoints are written (always `last.ckpt` after each validation and at the end).

    Args:
        every_n_steps: also write `last.ckpt` and the training state every this many optimizer steps.
        save_best: keep `best.ckpt`, the weights with the highest validation mIoU (needs validation).
    """

    every_n_steps: int | None = None
    save_best: bool = True

    def __post_init__(self) -> None:
        _check_types(self, "checkpoint")
        _require(self.every_n_steps is None or self.every_n_steps >= 1, "checkpoint.every_n_steps must be >= 1")


@dataclass(frozen=True)
class LoggingSection:
    """Training logs under `logs/`.

    Args:
        every_n_steps: log training metrics every this many optimizer steps.
        csv: write `logs/metrics.csv`.
        tensorboard: write TensorBoard event files; null: when tensorboard is installed.
    """

    every_n_steps: int = 10
    csv: bool = True
    tensorboard: bool | None = None

    def __post_init__(self) -> None:
        _check_types(self, "logging")
        _require(self.every_n_steps >= 1, f"logging.every_n_steps={self.every_n_steps} must be at least 1")


@dataclass(frozen=True)
class FinetuneSection:
    """Training from a checkpoint's weights (`--finetune CKPT` sets `checkpoint`).

    Args:
        checkpoint: a cmt-geo checkpoint whose architecture and weights training starts from (a classifier for
            another class count starts anew); null trains a new model.
        freeze_encoder: keep the encoder's weights (and normalization statistics) fixed.
        lr_factor: multiplies optim.lr.
    """

    checkpoint: str | None = None
    freeze_encoder: bool = True
    lr_factor: float = 0.1

    def __post_init__(self) -> None:
        _check_types(self, "finetune")
        _require(self.lr_factor > 0, f"finetune.lr_factor={self.lr_factor} must be positive, e.g. 0.1")


@dataclass(frozen=True)
class TrainConfig:
    """A whole training configuration: one typed section per YAML section (see each section's class)."""

    data: DataSection
    model: ModelSection = field(default_factory=ModelSection)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    loss: LossSection = field(default_factory=LossSection)
    optim: OptimSection = field(default_factory=OptimSection)
    schedule: ScheduleSection = field(default_factory=ScheduleSection)
    trainer: TrainerSection = field(default_factory=lambda: TrainerSection(max_epochs=100))
    checkpoint: CheckpointSection = field(default_factory=CheckpointSection)
    logging: LoggingSection = field(default_factory=LoggingSection)
    finetune: FinetuneSection = field(default_factory=FinetuneSection)

    SECTIONS: ClassVar[tuple[str, ...]] = (
        "model",
        "data",
        "augment",
        "loss",
        "optim",
        "schedule",
        "trainer",
        "checkpoint",
        "logging",
        "finetune",
    )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Build a config from nested mappings, as YAML reads them.

        Raises:
            ConfigError: not a mapping, an unknown or misspelled section or key (the message lists the valid ones),
                a missing data section or key, or a value of the wrong type or range.
        """
        if not isinstance(values, Mapping):
            raise ConfigError(f"a training config is a mapping of sections, got {type(values).__name__}")
        hints = get_type_hints(cls)
        sections = {}
        for name, content in values.items():
            if name not in cls.SECTIONS:
                raise ConfigError(_unknown("", name, cls.SECTIONS, what="section"))
            sections[name] = _section(hints[name], content or {}, name)
        if "data" not in sections:
            raise ConfigError("the config has no data section; add data: {dataset: ..., root: ...}")
        return cls(**sections)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dicts and lists (YAML- and JSON-friendly), every key written out."""
        return {name: _plain(getattr(self, name)) for name in self.SECTIONS}

    def override(self, overrides: Sequence[str]) -> TrainConfig:
        """A copy with `section.key=value` overrides applied (values read as YAML scalars: 3, 0.1, true, null,
        [1, 2], text).

        Raises:
            ConfigError: a malformed override, an unknown section or key, or an invalid value.
        """
        return TrainConfig.from_dict(apply_overrides(self.to_dict(), overrides))

    def save(self, path: str | os.PathLike[str], overwrite: bool = True) -> Path:
        """Write the config as YAML (atomically); `load_config` reads it back to the same config."""
        with atomic_output(path, overwrite=overwrite) as staging:
            staging.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        return Path(path)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {item.name: _plain(getattr(value, item.name)) for item in fields(value)}
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    return value


def _unknown(where: str, key: str, valid: Sequence[str], what: Literal["key", "section", "value"] = "key") -> str:
    """The message for an unknown key, section or value: what was given, its close match, and the valid ones."""
    close = difflib.get_close_matches(str(key), [str(v) for v in valid], n=1, cutoff=0.6)
    if what == "value":
        given, match = f"{where} {key!r}", close[0] if close else ""
    else:
        given = f"{what} '{where}.{key}'" if where else f"{what} {key!r}"
        match = (f"{where}.{close[0]}" if where else close[0]) if close else ""
    hint = f" (did you mean {match}?)" if match else ""
    return f"unknown {given}{hint}; valid {what}s: {', '.join(map(str, valid))}"


def _section(kind: Any, values: Any, name: str) -> Any:
    """One section's dataclass built from its mapping."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"section {name} must be a mapping of keys to values, got {values!r}")
    valid = [item.name for item in fields(kind)]
    for key in values:
        if key not in valid:
            raise ConfigError(_unknown(name, key, valid))
    missing = [item.name for item in fields(kind) if item.name not in values and _required(item)]
    if missing:
        raise ConfigError(f"section {name} needs {', '.join(missing)}; add {name}.{missing[0]} to the config")
    hints = get_type_hints(kind)
    return kind(**{key: coerce(f"{name}.{key}", value, hints[key]) for key, value in values.items()})


def _required(item: dataclasses.Field[Any]) -> bool:
    return item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING


def apply_overrides(values: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Nested config mappings with `section.key=value` overrides applied (not yet validated).

    Raises:
        ConfigError: an override that is not `section.key=value`, or whose value is not valid YAML.
    """
    result = {name: dict(section or {}) for name, section in values.items()}
    for text in overrides:
        target, equals, raw = text.partition("=")
        parts = target.strip().split(".")
        if not equals or len(parts) != 2 or not all(parts):
            raise ConfigError(
                f"override {text!r} is not section.key=value; write e.g. --set trainer.max_steps=20 "
                "(Python: load_config(path, ['trainer.max_steps=20']))"
            )
        section, key = parts
        if section not in TrainConfig.SECTIONS:
            raise ConfigError(_unknown("", section, TrainConfig.SECTIONS, what="section"))
        try:
            value = _read_yaml(raw) if raw.strip() else None
        except yaml.YAMLError as error:
            message = " ".join(str(error).split())
            raise ConfigError(f"override {text!r} has a value that is not YAML ({message}); quote it") from None
        result.setdefault(section, {})[key] = value
    return result


def load_config(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a YAML training config and apply `section.key=value` overrides.

    Args:
        path: the YAML file.
        overrides: e.g. ["trainer.max_steps=20", "data.root=/data/vaihingen"].

    Raises:
        ConfigError: the file is not a mapping of sections, has an unknown or misspelled section or key (the
            message lists the valid ones), a missing data key, or an invalid value.
    """
    source = Path(path).expanduser()
    if not source.is_file():
        raise ConfigError(f"config file {source} does not exist; give a YAML file, e.g. configs/synthetic.yaml")
    try:
        values = _read_yaml(source.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{source} is not valid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(values, Mapping):
        raise ConfigError(f"{source} must hold a mapping of sections (model:, data:, ...), got {values!r}")
    try:
        return TrainConfig.from_dict(apply_overrides(values, overrides))
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None
