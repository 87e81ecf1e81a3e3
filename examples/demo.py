"""`make demo`: from nothing to a segmented map in minutes, on the CPU (or a GPU when there is one).

Writes two synthetic georeferenced aerial scenes (one to train on, one held out), trains `cmt_unet_tiny` on the first
with configs/synthetic.yaml, predicts the held-out scene into a classified Cloud-Optimized GeoTIFF, vectorizes it
into a GeoPackage, draws a preview (input | prediction | polygons), scores the held-out scene and prints its mIoU
and where everything is. Every step is one call of cmt-geo's Python API; the notebooks import the helpers below.

    $ .venv/bin/python examples/demo.py [--output runs/demo] [--steps N] [--minutes 10] [--overwrite]
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import geopandas as gpd
    from matplotlib.figure import Figure

    from cmt_geo.evaluation import EvaluationResult
    from cmt_geo.progress import Progress
    from cmt_geo.training import TrainConfig, TrainResult

REPOSITORY = Path(__file__).resolve().parents[1]
#: The training recipe the demo runs (the same one `benchmarks/convergence.py` measures).
CONFIG = REPOSITORY / "configs" / "synthetic.yaml"
#: Where `make demo` writes; the notebooks reuse its checkpoint when it is there.
DEFAULT_OUTPUT = REPOSITORY / "runs" / "demo"
#: Scene seeds. write_synthetic places seed s at easting 500 km + s * 1000 km in UTM zone 32, so only seed 0 lies
#: inside the zone, where polygon areas in m² are exact: the held-out scene, whose polygons are measured.
TRAIN_SEED, HELDOUT_SEED = 1, 0
#: Longest side of the preview's pictures, pixels.
PREVIEW_PIXELS = 1024
#: How the preview shows no-data pixels (impervious surfaces are white), RGB in [0, 1].
NO_DATA_GREY = (0.8, 0.8, 0.8)


@dataclass(frozen=True)
class DemoSettings:
    """What the demo writes and how long it trains.

    Args:
        output: the folder everything goes to.
        steps: optimizer steps, the learning-rate schedule spanning them; None: the config's `trainer.max_steps`.
        minutes: stop training after this long even if the steps are not done (a slow or busy machine).
        train_size: side of the training scene, pixels (10 cm pixels: 2048 px is a 205 m square).
        heldout_size: side of the held-out scene, pixels.
        device: "auto" (CUDA, else CPU), "cpu" or "cuda".
        overwrite: replace what an earlier demo wrote there.
    """

    output: Path = DEFAULT_OUTPUT
    steps: int | None = None
    minutes: float = 10.0
    train_size: int = 2048
    heldout_size: int = 1024
    device: str = "auto"
    overwrite: bool = False


def write_scenes(output: Path, train_size: int, heldout_size: int, overwrite: bool = False) -> tuple[Path, Path]:
    """Write a training scene and a held-out scene (different seeds) as `images/scene.tif` + `labels/scene.tif`.

    Returns:
        The training and held-out dataset folders.
    """
    from cmt_geo.data import write_synthetic

    train = write_synthetic(output / "data" / "train", size=train_size, seed=TRAIN_SEED, overwrite=overwrite)
    heldout = write_synthetic(output / "data" / "heldout", size=heldout_size, seed=HELDOUT_SEED, overwrite=overwrite)
    return train, heldout


def training_config(
    train_root: Path,
    *,
    steps: int | None = None,
    minutes: float | None = None,
    device: str = "auto",
    overrides: Sequence[str] = (),
) -> TrainConfig:
    """configs/synthetic.yaml's recipe for a dataset folder (images/ + labels/), on `device`.

    Args:
        train_root: the training dataset folder.
        steps: optimizer steps; None keeps the config's.
        minutes: a time limit for training; None keeps the config's.
        device: "auto" (CUDA, else CPU), "cpu" or "cuda".
        overrides: more `section.key=value` changes.
    """
    from cmt_geo.training import load_config

    accelerator = {"auto": "auto", "cpu": "cpu"}.get(device, "gpu")
    changes = [f"data.root={train_root}", f"trainer.accelerator={accelerator}", "trainer.precision=auto"]
    changes += [] if steps is None else [f"trainer.max_steps={steps}"]
    changes += [] if minutes is None else [f"trainer.max_minutes={minutes}"]
    return load_config(CONFIG, [*changes, *overrides])  # precision auto: bf16 on a GPU, 32 on the CPU


def train_model(
    train_root: Path,
    run: Path,
    *,
    steps: int | None = None,
    minutes: float | None = None,
    device: str = "auto",
    overwrite: bool = False,
    progress: Progress | None = None,
) -> TrainResult:
    """Train configs/synthetic.yaml's recipe on a dataset folder (images/ + labels/) into a run folder."""
    from cmt_geo.training import train

    config = training_config(train_root, steps=steps, minutes=minutes, device=device)
    return train(config, run, overwrite=overwrite, progress=progress)


def example_checkpoint(work: Path, *, steps: int = 150, size: int = 1024) -> Path:
    """A checkpoint for the notebooks: the one `make demo` trained, else one trained here for `steps` steps."""
    for name in ("best.ckpt", "last.ckpt"):
        trained = DEFAULT_OUTPUT / "run" / "checkpoints" / name
        if trained.is_file():
            return trained
    scene = work / "train"
    from cmt_geo.data import write_synthetic

    if not (scene / "images" / "scene.tif").is_file():
        write_synthetic(scene, size=size, seed=TRAIN_SEED)
    result = train_model(scene, work / "run", steps=steps, overwrite=True)
    return result.best or result.last


def _stretched_rgb(source: Any, shape: tuple[int, int]) -> Any:
    """The first three bands of an open raster, read at `shape`, as an (H, W, 3) picture in [0, 1] (2-98 %)."""
    import numpy as np
    from rasterio.errors import NodataShadowWarning

    bands = [1, 2, 3] if source.count >= 3 else [1, 1, 1]
    with warnings.catch_warnings():  # a 4-band RGBN image is not RGBA: its no-data value is its mask
        warnings.simplefilter("ignore", NodataShadowWarning)
        image = source.read(bands, out_shape=(3, *shape), masked=True).astype("float64")
    low, high = np.percentile(image.compressed(), (2, 98)) if image.count() else (0.0, 1.0)
    picture = np.ma.clip((image - low) / max(high - low, 1e-9), 0, 1)
    picture = np.where(np.ma.getmaskarray(picture), np.array(NO_DATA_GREY)[:, None, None], picture.filled(0.0))
    return np.moveaxis(picture, 0, -1)


def plot_preview(
    image: str | Path,
    class_raster: str | Path,
    polygons: gpd.GeoDataFrame | str | Path,
    path: str | Path | None = None,
    *,
    overwrite: bool = False,
) -> Figure:
    """Input | prediction | polygons side by side, in map coordinates (large rasters are read from overviews).

    Args:
        image: the input raster (its first three bands are shown).
        class_raster: the class raster `predict_raster` wrote (colours from its colour table).
        polygons: the class polygons, or a vector file of them.
        path: also save the figure there as a PNG (refused when it exists, unless `overwrite`).
        overwrite: replace an existing PNG.
    """
    import geopandas as gpd
    import numpy as np
    import rasterio
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from rasterio.enums import Resampling
    from rasterio.plot import plotting_extent

    from cmt_geo.io.class_raster import read_class_names

    frame = polygons if isinstance(polygons, gpd.GeoDataFrame) else gpd.read_file(polygons)
    with rasterio.open(image) as source:
        step = max(1, math.ceil(max(source.width, source.height) / PREVIEW_PIXELS))
        shape = (math.ceil(source.height / step), math.ceil(source.width / step))
        rgb = _stretched_rgb(source, shape)
        extent = plotting_extent(source)
    with rasterio.open(class_raster) as source:
        classes = source.read(1, out_shape=shape, resampling=Resampling.nearest)
        names = read_class_names(source) or tuple(str(index) for index in range(int(classes.max()) + 1))
        table = source.colormap(1)
        nodata = source.nodata
    palette = np.zeros((256, 4))
    for index in range(len(names)):
        palette[index] = [channel / 255 for channel in table[index][:3]] + [1.0]
    coloured = palette[classes]
    missing = classes == int(nodata) if nodata is not None else np.zeros(classes.shape, dtype=bool)
    coloured[missing] = [*NO_DATA_GREY, 1.0]
    figure = Figure(figsize=(15, 5.4), layout="constrained")
    axes = figure.subplots(1, 3, sharex=True, sharey=True)
    axes[0].imshow(rgb, extent=extent)
    axes[0].set_title("input")
    axes[1].imshow(coloured, extent=extent, interpolation="nearest")
    axes[1].set_title("prediction")
    axes[2].imshow(rgb, extent=extent)
    if len(frame):
        colours = [tuple(palette[class_id][:3]) for class_id in frame["class_id"]]
        frame.plot(ax=axes[2], color=colours, alpha=0.45)
        frame.boundary.plot(ax=axes[2], color="black", linewidth=0.4)
    axes[2].set_title(f"polygons ({len(frame)})")
    for axis in axes:
        axis.set(xticks=[], yticks=[], xlabel="", ylabel="")
    legend = [Patch(facecolor=palette[index][:3], edgecolor="grey", label=name) for index, name in enumerate(names)]
    if missing.any():
        legend.append(Patch(facecolor=NO_DATA_GREY, edgecolor="grey", label="no data"))
    figure.legend(handles=legend, loc="outside lower center", ncols=len(legend), frameon=False)
    if path is not None:
        from cmt_geo.io.outputs import atomic_output

        with atomic_output(path, overwrite=overwrite) as staging:
            figure.savefig(staging, format="png", dpi=110, bbox_inches="tight")
    return figure


def run(settings: DemoSettings, progress: Progress | None = None) -> EvaluationResult:
    """Every step of the demo; returns the held-out scene's evaluation (its mIoU is `.scores.miou`)."""
    import cmt_geo
    from cmt_geo.card import read_card
    from cmt_geo.data import RasterSegmentation
    from cmt_geo.errors import CanceledError
    from cmt_geo.evaluation import evaluate
    from cmt_geo.training import train

    out, overwrite = settings.output, settings.overwrite
    started = time.perf_counter()
    _say(f"1/5 writing a {settings.train_size} px training scene and a {settings.heldout_size} px held-out scene")
    train_root, heldout_root = write_scenes(out, settings.train_size, settings.heldout_size, overwrite)
    config = training_config(train_root, steps=settings.steps, minutes=settings.minutes, device=settings.device)
    steps, architecture = config.trainer.max_steps, config.model.architecture
    _say(f"2/5 training {architecture} with {CONFIG.name} for {steps} steps (at most {settings.minutes:g} minutes)")
    trained = train(config, out / "run", overwrite=overwrite, progress=progress)
    if trained.stopped == "interrupted":
        raise CanceledError(f"training stopped at step {trained.steps}; run the demo again to start over")
    checkpoint = trained.best or trained.last
    minutes = (time.perf_counter() - started) / 60
    best = "" if trained.best_miou is None else f"; best validation mIoU {trained.best_miou:.3f}"
    _say(f"    {trained.steps} steps{best} ({minutes:.1f} min)")
    _say("3/5 predicting the held-out scene")
    options = cmt_geo.PredictOptions(tile_size=256, batch_size=8, device=settings.device)
    scene = heldout_root / "images" / "scene.tif"
    written = cmt_geo.predict_raster(
        scene,
        out / "heldout-classes.tif",
        checkpoint,
        options=options,
        confidence=out / "heldout-confidence.tif",
        overwrite=overwrite,
    )
    _say("4/5 vectorizing and drawing the preview")
    polygons = cmt_geo.vectorize(written.classes, out / "heldout-polygons.gpkg", min_area=1.0, overwrite=overwrite)
    plot_preview(scene, written.classes, polygons, out / "preview.png", overwrite=overwrite)
    _say("5/5 scoring the held-out scene")
    card = read_card(checkpoint)
    heldout = RasterSegmentation(
        heldout_root,
        classes=card.class_names,
        colors=card.class_colors,
        test_images=["scene"],
        split="test",
        compact=True,
    )
    return evaluate(
        checkpoint,
        heldout,
        split="test",
        options=options,
        output_dir=out / "evaluation",
        overwrite=overwrite,
        vis_tiles=1,
    )


def _say(text: str) -> None:
    print(text, flush=True)


def _report(result: EvaluationResult, settings: DemoSettings, seconds: float) -> None:
    out = settings.output
    _say("")
    for row in result.scores.per_class(result.class_names):
        _say(f"  {row['name']:<20} IoU {row['iou']:.3f}")
    _say(f"held-out mIoU {result.scores.miou:.3f} (OA {result.scores.oa:.3f}) on a scene never seen in training")
    _say(f"done in {seconds / 60:.1f} minutes; outputs in {out}:")
    for name, what in (
        ("heldout-classes.tif", "classified Cloud-Optimized GeoTIFF (open it in QGIS)"),
        ("heldout-polygons.gpkg", "class polygons (GeoPackage)"),
        ("preview.png", "input | prediction | polygons"),
        ("evaluation", "metrics.json, metrics.csv, confusion_matrix.png, vis/"),
        ("run/checkpoints", "the trained model: best.ckpt, last.ckpt"),
    ):
        _say(f"  {out / name}  {what}")


def main(argv: Sequence[str] | None = None) -> int:
    defaults = DemoSettings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--output", type=Path, default=defaults.output, help="folder for everything the demo writes")
    parser.add_argument("--steps", type=int, default=defaults.steps, help="training steps (default: the config's)")
    parser.add_argument("--minutes", type=float, default=defaults.minutes, help="training time limit")
    parser.add_argument("--train-size", type=int, default=defaults.train_size, help="training scene side, pixels")
    parser.add_argument("--heldout-size", type=int, default=defaults.heldout_size, help="held-out scene side")
    parser.add_argument("--device", default=defaults.device, help="auto, cpu or cuda")
    parser.add_argument("--overwrite", action="store_true", help="replace what an earlier demo wrote")
    args = parser.parse_args(argv)
    settings = DemoSettings(**{key.replace("-", "_"): value for key, value in vars(args).items()})
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("cmt_geo").setLevel(logging.INFO)
    from cmt_geo.errors import CanceledError, CmtGeoError
    from cmt_geo.progress import TerminalProgress

    started = time.perf_counter()
    try:
        result = run(settings, TerminalProgress(min_interval=1.0))
    except (CmtGeoError, KeyboardInterrupt) as error:
        print(f"error: {error or 'interrupted'}", file=sys.stderr)
        return 130 if isinstance(error, CanceledError | KeyboardInterrupt) else 1
    _report(result, settings, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
