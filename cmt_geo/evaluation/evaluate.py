"""`evaluate`: score a checkpoint on whole tiles of a dataset split with the field's protocol, and write the report.

Each tile is read whole through the dataset (as training reads it: same bands, no-data as 0, eroded ISPRS labels
on the test split) and predicted by the tiled-inference engine (`cmt_geo.inference.predict_array`: overlapping
windows, Hann blending, optional test-time augmentation), so they are predicted as `cmtgeo predict` predicts.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from cmt_geo._version import __version__
from cmt_geo.card import ModelCard, read_card
from cmt_geo.errors import BackendUnavailableError, ConfigError, DatasetNotFoundError
from cmt_geo.evaluation.metrics import SegmentationScores, confusion_matrix, scores
from cmt_geo.evaluation.protocols import EvaluationProtocol, protocol
from cmt_geo.progress import NullProgress, Progress, check_canceled

if TYPE_CHECKING:
    from torch import nn

    from cmt_geo.data.base import TiledSegmentationDataset
    from cmt_geo.data.splits import Split
    from cmt_geo.inference.options import PredictOptions

logger = logging.getLogger(__name__)

#: The kind of folder `evaluate` writes (see `cmt_geo.io.outputs.atomic_output`).
OUTPUT_KIND = "evaluation"
#: Longest side of a `vis/` panel's pictures; larger tiles are shown subsampled.
PANEL_PIXELS = 1024


@dataclass(frozen=True)
class TileScore:
    """Scores of one tile: its name, the label file scored, counted pixels, protocol mIoU and overall accuracy."""

    name: str
    label: str | None
    pixels: int
    miou: float
    oa: float


@dataclass(frozen=True)
class PredictionSettings:
    """How the tiles were predicted: checkpoint path (None for a model in memory), architecture, window size and
    overlap in pixels, batch size, test-time augmentation and device."""

    checkpoint: str | None
    architecture: str
    tile_size: int
    overlap: int
    batch_size: int
    tta: str
    device: str


@dataclass(frozen=True, eq=False)
class EvaluationResult:
    """What `evaluate` measured.

    Args:
        dataset: the dataset name.
        split: the split scored.
        class_names: class names, in index order.
        protocol: how the dataset is scored.
        confusion: (K, K) pixel counts over all tiles; rows the truth, columns the prediction.
        scores: protocol scores of `confusion` (means over `protocol.mean_over`).
        all_classes: the same scores with the means over every class.
        tiles: per-tile scores, in dataset order.
        settings: how it was predicted: checkpoint, architecture, tile size, overlap, batch size, TTA, device.
        output_dir: the report folder, None when nothing was written.
    """

    dataset: str
    split: str
    class_names: tuple[str, ...]
    protocol: EvaluationProtocol
    confusion: npt.NDArray[np.int64]
    scores: SegmentationScores
    all_classes: SegmentationScores
    tiles: tuple[TileScore, ...]
    settings: PredictionSettings
    output_dir: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """The metrics.json content (NaN, for classes absent from truth and prediction, becomes null)."""
        mean_over = self.scores.mean_over
        return _json_safe(
            {
                "dataset": self.dataset,
                "split": self.split,
                "protocol": self.protocol.describe(self.class_names),
                "mean_over": [self.class_names[i] for i in mean_over],
                "miou": self.scores.miou,
                "mean_f1": self.scores.mean_f1,
                "oa": self.scores.oa,
                "all_classes": {"miou": self.all_classes.miou, "mean_f1": self.all_classes.mean_f1},
                "classes": self.scores.per_class(self.class_names),
                "absent_classes": [self.class_names[i] for i in self.scores.absent],
                "confusion_matrix": {
                    "rows": "truth",
                    "columns": "prediction",
                    "classes": list(self.class_names),
                    "counts": self.confusion.tolist(),
                },
                "tiles": [asdict(tile) for tile in self.tiles],
                "settings": asdict(self.settings),
                "cmt_geo_version": __version__,
            }
        )


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


class _TileProgress:
    """Forwards the engine's window reports to the caller's progress, prefixed with the tile."""

    def __init__(self, progress: Progress, prefix: str) -> None:
        self.progress, self.prefix = progress, prefix

    def report(self, done: int, total: int | None, message: str = "") -> None:
        self.progress.report(done, total, f"{self.prefix}: {message}")

    def is_canceled(self) -> bool:
        return self.progress.is_canceled()


def build_dataset(name: str, root: str | os.PathLike[str], split: Split, card: ModelCard) -> TiledSegmentationDataset:
    """The `split` of dataset `name` in `root`, loaded as evaluation reads it (whole tiles, compact arrays).

    "raster" takes `root` as a folder holding `images/` and `labels/` with the checkpoint's classes and colours.

    Raises:
        DatasetNotFoundError: `root` does not exist, or the split has no tiles there.
        ConfigError: an unknown dataset name or split.
    """
    from cmt_geo.data.registry import dataset_class
    from cmt_geo.data.splits import check_split

    check_split(split)
    kind: Any = dataset_class(name)  # the constructors differ: a folder, or images with classes
    folder = Path(root).expanduser()
    if not folder.exists():
        raise DatasetNotFoundError(
            f"{folder} does not exist; give the unpacked {name} dataset folder (--root / evaluate(root=...))"
        )
    if name == "raster":
        return kind(folder, classes=card.class_names, colors=card.class_colors, split=split, compact=True)
    return kind(folder, split=split, compact=True)


def _check_fit(card: ModelCard, dataset: TiledSegmentationDataset) -> None:
    """Refuse a checkpoint whose classes do not fit the dataset's; warn when only the names differ."""
    if card.num_classes != dataset.num_classes:
        raise ConfigError(
            f"the checkpoint predicts {card.num_classes} classes {list(card.class_names)} but the {dataset.name} "
            f"dataset has {dataset.num_classes} {list(dataset.classes)}; evaluate a checkpoint trained on this dataset"
        )
    if tuple(card.class_names) != tuple(dataset.classes):
        logger.warning(
            "checkpoint classes %s differ in name from the dataset's %s; scoring them by index",
            list(card.class_names),
            list(dataset.classes),
        )


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise BackendUnavailableError(
            "writing confusion_matrix.png and vis/ needs matplotlib; pip install matplotlib, or evaluate without "
            "an output folder (evaluate(..., output_dir=None)) to get the scores alone"
        ) from None


def evaluate(
    checkpoint: str | os.PathLike[str] | tuple[nn.Module, ModelCard],
    dataset: str | TiledSegmentationDataset,
    *,
    root: str | os.PathLike[str] | None = None,
    split: Split = "test",
    options: PredictOptions | None = None,
    output_dir: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    vis_tiles: int = 8,
    progress: Progress | None = None,
) -> EvaluationResult:
    """Predict every tile of a dataset split whole (sliding windows) and score it with the dataset's protocol.

    Args:
        checkpoint: a checkpoint file, or a (model, card) pair in memory.
        dataset: a registered dataset name (see `cmt_geo.data.DATASET_NAMES`), read from `root`; or a dataset
            already built (then `root` is not used and `split` only names it in the report).
        root: the dataset folder, with a dataset name.
        split: the split to score ("test" for the protocol's numbers; choose checkpoints on "val", never "test").
        options: tiling, batch size, test-time augmentation and device, as for `predict_raster`.
        output_dir: folder for metrics.csv, metrics.json, confusion_matrix.png and vis/; nothing is written when
            None.
        overwrite: replace an earlier evaluation folder (never a folder cmt-geo did not write).
        vis_tiles: how many tiles (the first ones) get an input | ground truth | prediction panel in vis/.
        progress: told the tiles (and each tile's windows) done so far, and asked whether to stop.

    Returns:
        The confusion matrix, the protocol's and per-class scores, and per-tile scores.

    Raises:
        DatasetNotFoundError: the dataset folder or split is missing, or the split has no labelled pixels.
        CheckpointError: the checkpoint is missing or not a cmt-geo checkpoint.
        ConfigError: the checkpoint's classes do not fit the dataset, or a bad option.
        OutputExistsError: `output_dir` exists and `overwrite` is False.
        BackendUnavailableError: an output folder is asked for and matplotlib is not installed.
        CanceledError: the progress asked to stop (no output is left behind).
    """
    from cmt_geo.data.splits import check_split
    from cmt_geo.inference.engine import load_model
    from cmt_geo.inference.options import PredictOptions
    from cmt_geo.io.outputs import atomic_output

    options = options or PredictOptions()
    progress = progress or NullProgress()
    check_split(split)
    if isinstance(vis_tiles, bool) or not isinstance(vis_tiles, int) or vis_tiles < 0:
        raise ConfigError(f"vis_tiles={vis_tiles!r} must be 0 or more tiles")
    card = checkpoint[1] if isinstance(checkpoint, tuple) else read_card(checkpoint)
    if isinstance(dataset, str):
        if root is None:
            raise ConfigError(f"evaluating {dataset!r} by name needs its folder: evaluate(..., root=DIR) (--root DIR)")
        data = build_dataset(dataset, root, split, card)
    else:
        data = dataset
    _check_fit(card, data)
    if output_dir is not None:
        _require_matplotlib()
    chosen = protocol(data.name)
    settings = _settings(checkpoint, card, options)
    staging: contextlib.AbstractContextManager[Path | None] = (
        contextlib.nullcontext()
        if output_dir is None
        else atomic_output(output_dir, overwrite=overwrite, folder_kind=OUTPUT_KIND)
    )
    with staging as folder:
        model = load_model(checkpoint, device="cpu")
        confusion, tiles = _predict_and_count(data, model, options, progress, folder, vis_tiles, chosen)
        if not confusion.any():
            raise DatasetNotFoundError(
                f"the {split} split of {data.name} has no labelled pixels (UAVid withholds its test labels); "
                "evaluate a labelled split, e.g. split='val' (--split val)"
            )
        result = EvaluationResult(
            dataset=data.name,
            split=split,
            class_names=tuple(data.classes),
            protocol=chosen,
            confusion=confusion,
            scores=scores(confusion, chosen.mean_over),
            all_classes=scores(confusion),
            tiles=tuple(tiles),
            settings=settings,
            output_dir=None if output_dir is None else Path(output_dir),
        )
        if folder is not None:
            _write_report(result, folder)
    return result


def _settings(
    checkpoint: str | os.PathLike[str] | tuple[nn.Module, ModelCard], card: ModelCard, options: PredictOptions
) -> PredictionSettings:
    """How the tiles are predicted, for the report (checked before any work: a bad overlap or missing device
    fails here)."""
    from cmt_geo.inference.model import resolve_device

    tile, stride = options.grid(card.patch_size)
    return PredictionSettings(
        checkpoint=None if isinstance(checkpoint, tuple) else str(checkpoint),
        architecture=card.architecture,
        tile_size=tile,
        overlap=tile - stride,
        batch_size=options.batch_size,
        tta=options.tta,
        device=str(resolve_device(options.device)),
    )


def _predict_and_count(
    data: TiledSegmentationDataset,
    model: tuple[nn.Module, ModelCard],
    options: PredictOptions,
    progress: Progress,
    folder: Path | None,
    vis_tiles: int,
    chosen: EvaluationProtocol,
) -> tuple[npt.NDArray[np.int64], list[TileScore]]:
    """Predict each tile whole, count its confusion matrix, and draw the first `vis_tiles` panels into `folder`."""
    from cmt_geo.data.base import PatchWindow

    count = data.num_classes
    total = np.zeros((count, count), dtype=np.int64)
    tiles: list[TileScore] = []
    for index, tile in enumerate(data.tiles):
        name = tile.files.name
        sample = data[PatchWindow(index, 0, 0, tile.height, tile.width)]
        image, mask = sample["image"].numpy(), sample["mask"].numpy()
        where = _TileProgress(progress, f"tile {index + 1}/{len(data.tiles)} {name}")
        predicted = _predict_tile(image, data, tile.transform, model, options, where)
        matrix = confusion_matrix(predicted, mask, count)
        total += matrix
        tile_scores = scores(matrix, chosen.mean_over)
        label = None if tile.files.label is None else str(tile.files.label)
        tiles.append(TileScore(name, label, int(matrix.sum()), tile_scores.miou, tile_scores.oa))
        if folder is not None and index < vis_tiles:
            _write_panel(data, image, mask, predicted, folder / "vis" / f"{_file_name(name)}.png", tiles[-1])
        progress.report(index + 1, len(data.tiles), "tiles evaluated")
        check_canceled(progress)
    return total, tiles


def _predict_tile(
    image: npt.NDArray[Any],
    data: TiledSegmentationDataset,
    transform: Any,
    model: tuple[nn.Module, ModelCard],
    options: PredictOptions,
    progress: Progress,
) -> npt.NDArray[np.uint8]:
    """(H, W) class ids of a whole (C, H, W) tile through the tiled-inference engine."""
    import rioxarray  # noqa: F401  (registers the .rio accessor)
    import xarray
    from rasterio.errors import NotGeoreferencedWarning

    from cmt_geo.inference.arrays import predict_array

    array = xarray.DataArray(image, dims=("band", "y", "x"), attrs={"long_name": tuple(data.band_names)})
    array = array.rio.write_transform(transform)
    if data.crs is not None:
        array = array.rio.write_crs(data.crs)
    with warnings.catch_warnings():  # tiles laid out in pixel space (ISPRS, UAVid, LoveDA) have no CRS
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        classes = predict_array(array, model, options=options, progress=progress)
    return np.asarray(classes.values, dtype=np.uint8)


def _file_name(tile: str) -> str:
    """A tile name as a file name ("seq1/000000" -> "seq1_000000")."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", tile)


def _write_panel(
    data: TiledSegmentationDataset,
    image: npt.NDArray[Any],
    mask: npt.NDArray[Any],
    predicted: npt.NDArray[np.uint8],
    path: Path,
    tile: TileScore,
) -> None:
    """Input | ground truth | prediction of one tile in the dataset's colours (subsampled to `PANEL_PIXELS`)."""
    import matplotlib.pyplot as plt
    import torch

    step = max(1, math.ceil(max(mask.shape) / PANEL_PIXELS))
    sample = {
        "image": torch.from_numpy(np.ascontiguousarray(image[:, ::step, ::step])),
        "mask": torch.from_numpy(np.ascontiguousarray(mask[::step, ::step])),
        "prediction": torch.from_numpy(np.ascontiguousarray(predicted[::step, ::step])),
    }
    path.parent.mkdir(exist_ok=True)
    figure = data.plot(sample, suptitle=f"{tile.name}: mIoU {tile.miou:.3f}, OA {tile.oa:.3f}")
    try:
        figure.axes[1].set_title("Ground truth")
        figure.savefig(path, dpi=100, bbox_inches="tight")
    finally:
        plt.close(figure)


def _write_report(result: EvaluationResult, folder: Path) -> None:
    """metrics.json, metrics.csv and confusion_matrix.png of a result."""
    (folder / "metrics.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    with (folder / "metrics.csv").open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["scope", "class", "metric", "value"])
        for metric in ("miou", "mean_f1", "oa"):
            writer.writerow(["protocol", "", metric, _csv_number(getattr(result.scores, metric))])
        for metric in ("miou", "mean_f1"):
            writer.writerow(["all_classes", "", metric, _csv_number(getattr(result.all_classes, metric))])
        for row in result.scores.per_class(result.class_names):
            for metric in ("iou", "f1", "precision", "recall", "support"):
                writer.writerow(["class", row["name"], metric, _csv_number(row[metric])])
    _plot_confusion(result.confusion, result.class_names, folder / "confusion_matrix.png")


def _csv_number(value: float) -> str:
    """A number for metrics.csv; an undefined score (NaN) is left empty."""
    return "" if isinstance(value, float) and math.isnan(value) else f"{value:.6g}"


def _plot_confusion(confusion: npt.NDArray[np.int64], class_names: Sequence[str], path: Path) -> None:
    """The confusion matrix normalized per true class (rows sum to 1), with the percentages written in."""
    from matplotlib.figure import Figure

    truth = confusion.sum(axis=1, keepdims=True)
    share = confusion / np.maximum(truth, 1)
    size = 2 + 0.6 * len(class_names)
    figure = Figure(figsize=(size + 1.5, size))
    axis = figure.add_subplot()
    picture = axis.imshow(share, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(picture, ax=axis, fraction=0.046, pad=0.04, label="share of the true class")
    ticks = range(len(class_names))
    axis.set_xticks(ticks, class_names, rotation=45, ha="right")
    axis.set_yticks(ticks, class_names)
    axis.set_xlabel("prediction")
    axis.set_ylabel("truth")
    if len(class_names) <= 16:
        for row in (row for row in ticks if truth[row, 0]):  # a class absent from the truth has no shares
            for col in ticks:
                colour = "white" if share[row, col] > 0.5 else "black"
                axis.text(col, row, f"{share[row, col]:.0%}", ha="center", va="center", color=colour, fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
