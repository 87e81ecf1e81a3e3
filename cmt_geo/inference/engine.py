"""`predict_raster`: a raster of any size in, a classified Cloud-Optimized GeoTIFF (and friends) out, streaming.

A reader thread reads overlapping windows (and their validity mask) ahead of the model; the model predicts
batches of windows; a `RowBlender` blends their probabilities and hands out finished rows, which are written to
striped GeoTIFFs at once. When every row is written, each striped file is copied to a COG (tiled, compressed,
overviews) at a staging path that replaces the output only then. Memory depends on the raster's width and the tile
size, never on its height.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import queue
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio
import rasterio.shutil
import torch
import torch.distributed
from affine import Affine
from rasterio.enums import MaskFlags, Resampling
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window
from torch import nn

from cmt_geo.card import IGNORE_INDEX, ModelCard
from cmt_geo.errors import CmtGeoError, ConfigError
from cmt_geo.inference.blend import FinishedRows, RowBlender
from cmt_geo.inference.heap import kept_heap
from cmt_geo.inference.model import TilePredictor, resolve_device
from cmt_geo.inference.options import PredictOptions
from cmt_geo.inference.overview import ModeOverview, overview_factors, overview_path, remove_overviews
from cmt_geo.io.class_raster import write_class_metadata
from cmt_geo.io.grid import grid_starts, grid_windows
from cmt_geo.io.outputs import atomic_output
from cmt_geo.io.raster import block_windows, input_bands, nodata_values, open_raster, read_window
from cmt_geo.progress import NullProgress, Progress, check_canceled

logger = logging.getLogger(__name__)

#: A checkpoint file, or a model already in memory with its card.
ModelSource = str | os.PathLike[str] | tuple[nn.Module, ModelCard]
#: Relative difference of input and training pixel sizes above which `predict_raster` warns.
GSD_TOLERANCE = 0.25
#: Block side of the striped outputs written while predicting.
_OUTPUT_BLOCK = 256


@dataclass(frozen=True)
class PredictOutputs:
    """What `predict_raster` wrote: the class raster, and the optional confidence and probability rasters."""

    classes: Path
    confidence: Path | None = None
    probabilities: Path | None = None


def load_model(source: ModelSource, device: str = "cpu") -> tuple[nn.Module, ModelCard]:
    """The model and card of a checkpoint path, the model rewritten for inference (`optimize_for_inference`), or
    the given pair, unchanged (pass `optimize_for_inference(model)` for the same speed)."""
    if isinstance(source, tuple):
        return source
    from cmt_geo.models import load_checkpoint, optimize_for_inference

    model, card = load_checkpoint(source, device)
    return optimize_for_inference(model, inplace=True), card


def _pixel_metres(src: DatasetReader) -> float | None:
    """The input's pixel width in metres, or None when its CRS is not projected."""
    if src.crs is None or not src.crs.is_projected:
        return None
    return float(abs(src.transform.a) * src.crs.linear_units_factor[1])


def _warn_resolution(src: DatasetReader, card: ModelCard, resample: bool) -> None:
    """Warn when the input's pixel size differs from the training pixel size by more than `GSD_TOLERANCE`."""
    metres = _pixel_metres(src)
    if card.ground_sample_distance is None or metres is None or resample:
        return
    if abs(metres / card.ground_sample_distance - 1) > GSD_TOLERANCE:
        logger.warning(
            "%s has %.3g m pixels but the model was trained on %.3g m pixels; results may suffer: pass --resample "
            "(resample=True) to predict at the training resolution and write at the input's",
            src.name,
            metres,
            card.ground_sample_distance,
        )


def _at_model_resolution(src: DatasetReader, card: ModelCard) -> WarpedVRT:
    """The input seen at the card's pixel size (bilinear), same CRS and extent.

    Raises:
        ConfigError: the card has no ground sample distance or the input's CRS is not projected.
    """
    metres = _pixel_metres(src)
    if card.ground_sample_distance is None or metres is None:
        raise ConfigError(
            f"resampling needs the model's training pixel size and an input in a projected CRS; {src.name} is in "
            f"{src.crs} and the card's ground_sample_distance is {card.ground_sample_distance}: leave --resample out"
        )
    factor = metres / card.ground_sample_distance
    width, height = max(1, round(src.width * factor)), max(1, round(src.height * factor))
    transform = src.transform @ Affine.scale(src.width / width, src.height / height)
    return WarpedVRT(src, crs=src.crs, transform=transform, width=width, height=height, resampling=Resampling.bilinear)


def _to_input_grid(striped: dict[str, Path], src: DatasetReader, card: ModelCard) -> dict[str, Path]:
    """Striped copies of outputs made at the model's resolution, on the input's grid (classes by nearest
    neighbour, confidence and probabilities bilinearly)."""
    fine_paths = {kind: path.with_name(path.stem + ".input-grid.tif") for kind, path in striped.items()}
    fine = _StripedOutputs(src, card, fine_paths)
    grid = {"crs": src.crs, "transform": src.transform, "width": src.width, "height": src.height}
    try:
        for kind, path in striped.items():
            resampling = Resampling.nearest if kind == "classes" else Resampling.bilinear
            with rasterio.open(path) as coarse, WarpedVRT(coarse, resampling=resampling, **grid) as warped:
                for window in block_windows(src.height, src.width, 512):
                    fine.files[kind].write(warped.read(window=window), window=window)
    finally:
        fine.close()
    return fine_paths


@dataclass
class _Batch:
    """Windows of one grid row, read and prepared for the model.

    Attributes:
        row: the grid row's first raster row.
        seen: windows looked at, including those without data (for progress).
        windows: the windows with data.
        images: their (B, H, W, C) model input, channels last.
        valid: their validity masks (None: every pixel is valid).
    """

    row: int
    seen: int
    windows: list[Window]
    images: npt.NDArray[np.float32]
    valid: list[npt.NDArray[np.bool_] | None]


_END = object()


def _read_batches(
    src: DatasetReader,
    bands: list[int],
    windows: list[Window],
    options: PredictOptions,
    predictor: TilePredictor,
    buffers: int,
) -> Iterator[_Batch]:
    """Batches of up to `options.batch_size` windows of one grid row, in grid order, with their validity masks
    (pixels that are not no-data, else not masked by the raster); windows without a valid pixel are left out, and
    a grid row of only those gives an empty batch. The batches' images take turns in `buffers` arrays allocated
    once (a fresh array per batch costs page faults), so a batch's images are overwritten `buffers` batches later."""
    nodata = src.nodata if options.nodata is None else options.nodata
    masked = any(MaskFlags.all_valid not in src.mask_flag_enums[band - 1] for band in bands)
    shape = (options.batch_size, int(windows[0].height), int(windows[0].width), len(bands)) if windows else (0,)
    images = np.empty((buffers, *shape), np.float32)
    batch: _Batch | None = None
    made = 0
    for window in windows:
        if batch is not None and (int(window.row_off) != batch.row or len(batch.windows) == options.batch_size):
            yield batch
            batch = None
        if batch is None:
            batch = _Batch(int(window.row_off), 0, [], images[made % buffers], [])
            made += 1
        batch.seen += 1
        raw = read_window(src, bands, window, src.name)
        valid: npt.NDArray[np.bool_] | None = None
        if nodata is not None:
            valid = ~nodata_values(raw, nodata).all(axis=0)
        elif masked:  # an alpha band or an internal mask
            valid = np.logical_and.reduce(read_window(src, bands, window, src.name, masks=True) > 0)
        if valid is not None and valid.all():
            valid = None
        if valid is None or valid.any():
            predictor.prepare(raw, valid, out=batch.images[len(batch.windows)])
            batch.windows.append(window)
            batch.valid.append(valid)
    if batch is not None:
        yield batch


def _read_ahead(tiles: Iterator[Any], depth: int) -> Generator[Any, None, None]:
    """The items of `tiles`, produced by a thread up to `depth` ahead (read while the model computes)."""
    ahead: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in tiles:
                if stop.is_set():
                    return
                ahead.put(item)
        except BaseException as error:  # handed to the consumer, which re-raises it
            ahead.put(error)
        ahead.put(_END)

    thread = threading.Thread(target=produce, name="cmtgeo-reader", daemon=True)
    thread.start()
    try:
        while (item := ahead.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # empty the queue until the reader stops: it may be blocked putting an item
            with contextlib.suppress(queue.Empty):
                while True:
                    ahead.get_nowait()
            thread.join(timeout=0.01)


def _batches_ahead(
    src: DatasetReader, bands: list[int], windows: list[Window], options: PredictOptions, predictor: TilePredictor
) -> Generator[_Batch, None, None]:
    """`_read_batches`, read by a thread two batches ahead. A batch is in use until the next is taken: then two
    wait in the queue and the reader fills one more, so four image buffers take turns."""
    depth = 2
    return _read_ahead(_read_batches(src, bands, windows, options, predictor, buffers=depth + 2), depth=depth)


class _StripedOutputs:
    """Striped GeoTIFFs receiving finished rows: class ids, and optionally confidence and probabilities; with
    `overview`, also the class ids' first overview (see `ModeOverview`) when the COG copy would make overviews."""

    def __init__(self, src: DatasetReader, card: ModelCard, paths: dict[str, Path], *, overview: bool = False) -> None:
        profile = {
            "driver": "GTiff",
            "height": src.height,
            "width": src.width,
            "crs": src.crs,
            "transform": src.transform,
            "dtype": "uint8",
            "nodata": IGNORE_INDEX,
            "tiled": True,
            "blockxsize": _OUTPUT_BLOCK,
            "blockysize": _OUTPUT_BLOCK,
            "compress": "zstd",  # fast: the COG copy compresses for good
            "zstd_level": 1,
            "num_threads": "ALL_CPUS",  # GDAL compresses blocks in threads of its own, off the model's thread
            "BIGTIFF": "IF_SAFER",
        }
        self.files: dict[str, Any] = {}
        counts = {"classes": 1, "confidence": 1, "probabilities": card.num_classes}
        for kind, path in paths.items():
            self.files[kind] = rasterio.open(path, "w", count=counts[kind], **profile)
        write_class_metadata(self.files["classes"], card.class_names, card.class_colors)
        if "probabilities" in self.files:
            for index, name in enumerate(card.class_names, start=1):
                self.files["probabilities"].set_band_description(index, name)
            self.files["probabilities"].update_tags(scale="percent")
        if "confidence" in self.files:
            self.files["confidence"].set_band_description(1, "confidence (max probability, percent)")
        self.overview = None
        if overview and overview_factors(src.width, src.height):
            self.overview = ModeOverview(self.files["classes"], overview_path(paths["classes"]), IGNORE_INDEX)

    def write(self, rows: FinishedRows) -> None:
        window = Window(0, rows.top, rows.classes.shape[-1], rows.bottom - rows.top)
        self.files["classes"].write(rows.classes[None], window=window)
        if self.overview is not None:
            self.overview.add(rows.classes)
        if rows.probabilities is None:
            return
        percent = np.round(rows.probabilities * 100).astype(np.uint8)
        percent[:, ~rows.covered] = IGNORE_INDEX
        if "confidence" in self.files:
            self.files["confidence"].write(percent.max(axis=0, initial=0)[None], window=window)
        if "probabilities" in self.files:
            self.files["probabilities"].write(percent, window=window)

    def close(self) -> None:
        for file in self.files.values():
            file.close()
        if self.overview is not None:
            self.overview.close()


def _compiled_batch(reader: DatasetReader | WarpedVRT, options: PredictOptions, patch_size: int) -> int | None:
    """The batch size to compile the model for with `options.compile`: the fewest windows that still predict a grid
    row in as many forwards as `options.batch_size` (batches stay within a row, so a row's last one is padded);
    None without `compile`, or for a raster smaller than one tile (each window shape would compile anew, for a
    single batch)."""
    if not options.compile:
        return None
    tile, stride = options.grid(patch_size)
    if min(reader.height, reader.width) < tile:
        logger.info("predicting uncompiled: the raster is smaller than one %d px tile", tile)
        return None
    columns = len(grid_starts(reader.width, tile, stride))
    forwards = -(-columns // options.batch_size)
    return -(-columns // forwards)


def _block_cache_bytes(src: DatasetReader, bands: list[int], tile: int, output_bands: int) -> int:
    """A GDAL block cache for the rows in flight, a quarter more for GDAL's bookkeeping, at least 64 MiB: the input
    blocks one grid row of windows reads (a tile's rows and a block row more, so the rows shared with the next grid
    row are not read again), and two block rows of every output and of the class overviews (each block row is
    finished over two grid rows). GDAL's default, 5 % of RAM, would keep every written block until it is full, so
    memory would grow with the raster's height."""
    input_bytes = sum(np.dtype(src.dtypes[band - 1]).itemsize for band in bands)
    reading = (tile + src.block_shapes[bands[0] - 1][0]) * input_bytes
    writing = 2 * _OUTPUT_BLOCK * (output_bands + 1)
    return max(64 << 20, int(1.25 * (reading + writing) * src.width))


def _to_cog(striped: Path, destination: Path, resampling: str) -> None:
    """Copy a striped GeoTIFF to a Cloud-Optimized GeoTIFF with overviews made by `resampling`."""
    rasterio.shutil.copy(
        striped,
        destination,
        driver="COG",
        compress="DEFLATE",
        level=1,  # about twice as fast as the default 6, files about a fifth larger
        num_threads="ALL_CPUS",
        blocksize=512,
        overview_resampling=resampling,
        bigtiff="IF_SAFER",
    )


def predict_raster(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    model: ModelSource,
    *,
    options: PredictOptions | None = None,
    confidence: str | os.PathLike[str] | None = None,
    probabilities: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> PredictOutputs:
    """Classify a raster of any size into a uint8 class COG on the input's exact grid.

    Args:
        source: the input raster (GeoTIFF, VRT, anything GDAL reads).
        output: the class raster to write (class ids, no-data 255, colour table and class names; see
            `cmt_geo.io.class_raster`).
        model: a checkpoint path, or a (model, card) pair already in memory.
        options: tiling, batching, TTA, band mapping, no-data and device.
        confidence: also write the max probability per pixel (uint8 percent, no-data 255).
        probabilities: also write every class's probability (one uint8 percent band per class, no-data 255).
        overwrite: replace existing outputs.
        progress: told the windows done so far, and asked whether to stop.

    Returns:
        The paths written.

    Raises:
        InvalidRasterError: the input cannot be read, or its bands do not fit the model.
        OutputExistsError: an output exists and `overwrite` is False.
        CheckpointError: the checkpoint is missing, corrupt or not a cmt-geo checkpoint.
        CanceledError: the progress asked to stop (no output is left behind).
    """
    options = options or PredictOptions()
    progress = progress or NullProgress()
    rank, world = _distributed()
    destinations = {"classes": output, "confidence": confidence, "probabilities": probabilities}
    chosen = {kind: Path(path) for kind, path in destinations.items() if path is not None}
    with open_raster(Path(source)) as src, contextlib.ExitStack() as stack:
        stack.enter_context(kept_heap())
        staging = _shared_staging(stack, chosen, overwrite, rank, world)
        net, card = load_model(model)
        bands = input_bands(src, card.band_names, options.bands)
        _warn_resolution(src, card, options.resample)
        reader = stack.enter_context(_at_model_resolution(src, card)) if options.resample else src
        compiled_batch = _compiled_batch(reader, options, card.patch_size)
        if compiled_batch is not None:
            options = dataclasses.replace(options, batch_size=compiled_batch)
        predictor = TilePredictor(net, card, resolve_device(options.device), options.tta, compiled_batch=compiled_batch)
        output_bands = sum(card.num_classes if kind == "probabilities" else 1 for kind in chosen)
        tile = options.grid(card.patch_size)[0]
        stack.enter_context(rasterio.Env(GDAL_CACHEMAX=_block_cache_bytes(reader, bands, tile, output_bands)))
        striped_paths = {kind: path.with_name(path.stem + ".striped.tif") for kind, path in staging.items()}
        parts = (
            [
                {kind: path.with_name(f"{path.stem}.part{index}.tif") for kind, path in staging.items()}
                for index in range(world)
            ]
            if world > 1
            else [striped_paths]
        )
        if rank == 0:
            for path in [*striped_paths.values(), *(path for part in parts for path in part.values())]:
                stack.callback(path.unlink, missing_ok=True)
            stack.callback(remove_overviews, striped_paths["classes"])
        striped = _StripedOutputs(reader, card, parts[rank], overview=world == 1 and reader is src)
        try:
            rows = _rank_rows(reader.height, rank, world)
            _predict_rows(
                reader, predictor, bands=bands, options=options, outputs=striped, progress=progress, rows=rows
            )
        finally:
            striped.close()
        if world > 1:
            torch.distributed.barrier()
            if rank == 0:
                _merge_parts(parts, striped_paths, reader, card)
        if rank == 0:
            if reader is not src:
                striped_paths = _to_input_grid(striped_paths, src, card)
                for path in striped_paths.values():
                    stack.callback(path.unlink, missing_ok=True)
            started = time.perf_counter()
            for kind, path in staging.items():
                _to_cog(striped_paths[kind], path, "MODE" if kind == "classes" else "AVERAGE")
            logger.debug("Cloud-Optimized GeoTIFFs written in %.2f s", time.perf_counter() - started)
    if world > 1:
        torch.distributed.barrier()  # every rank returns once the outputs exist
    written = {kind: Path(path) for kind, path in chosen.items()}
    # debug: the CLI says what it wrote, and `predict_array` writes temporaries a user need not see
    logger.debug("wrote %s", ", ".join(str(path) for path in written.values()))
    return PredictOutputs(**written)


def join_launched_group(device: str) -> str:
    """Join the process group a launcher such as torchrun describes (WORLD_SIZE > 1 in the environment), once;
    returns the device for this process ("cuda:LOCAL_RANK" when `device` is "auto" or "cuda" and CUDA is there)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or not torch.distributed.is_available():
        return device
    cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if cuda else "gloo")
    return f"cuda:{os.environ.get('LOCAL_RANK', '0')}" if cuda else device


def _distributed() -> tuple[int, int]:
    """(rank, world size) of an initialized torch.distributed process group, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _rank_rows(height: int, rank: int, world: int) -> tuple[int, int]:
    """The output rows [top, bottom) that rank `rank` of `world` predicts: contiguous, disjoint bands."""
    return height * rank // world, height * (rank + 1) // world


def _shared_staging(
    stack: contextlib.ExitStack, chosen: dict[str, Path], overwrite: bool, rank: int, world: int
) -> dict[str, Path]:
    """Rank 0's staging paths for the outputs (entered on `stack`), known to every rank; an error there (an
    existing output, say) is raised on every rank."""
    staging: dict[str, Path] = {}
    failure: BaseException | None = None
    if rank == 0:
        try:
            staging = {
                kind: stack.enter_context(atomic_output(path, overwrite=overwrite)) for kind, path in chosen.items()
            }
        except CmtGeoError as error:
            failure = error
    if world > 1:
        shared: list[Any] = [staging, failure]
        torch.distributed.broadcast_object_list(shared, src=0)
        staging, failure = shared
    if failure is not None:
        raise failure
    return staging


def _merge_parts(
    parts: list[dict[str, Path]], striped_paths: dict[str, Path], reader: DatasetReader, card: ModelCard
) -> None:
    """Copy each rank's rows from its part files into the striped outputs, a block of rows at a time."""
    merged = _StripedOutputs(reader, card, striped_paths)
    try:
        for index, part in enumerate(parts):
            top, bottom = _rank_rows(reader.height, index, len(parts))
            for kind, path in part.items():
                with rasterio.open(path) as rows:
                    for window in block_windows(bottom - top, reader.width, 512):
                        placed = Window(0, top + int(window.row_off), reader.width, int(window.height))
                        merged.files[kind].write(rows.read(window=placed), window=placed)
    finally:
        merged.close()


def _predict_rows(
    src: DatasetReader,
    predictor: TilePredictor,
    *,
    bands: list[int],
    options: PredictOptions,
    outputs: _StripedOutputs,
    progress: Progress,
    rows: tuple[int, int],
) -> None:
    """Predict, in grid order, every window that touches output `rows` [top, bottom), blend, and write those rows
    as they are finished (every window covering a row contributes, so any split into row bands gives the same
    result)."""
    tile, stride = options.grid(predictor.card.patch_size)
    grid = list(grid_windows(src.height, src.width, (tile, tile), (stride, stride)))
    shape = (int(grid[0].height), int(grid[0].width))
    top, bottom = rows
    windows = [w for w in grid if int(w.row_off) < bottom and int(w.row_off + w.height) > top]
    blender = RowBlender(
        predictor.card.num_classes,
        src.height,
        src.width,
        shape,
        top=int(windows[0].row_off) if windows else top,
        probabilities=len(outputs.files) > 1,
    )

    def write_until(row: int) -> None:
        for finished in blender.finish_until(row):
            kept = finished.clip(top, bottom)
            if kept is not None:
                outputs.write(kept)

    done = 0
    batches = _batches_ahead(src, bands, windows, options, predictor)
    with contextlib.closing(batches):  # stop and join the reader before the raster closes, also on an error
        for batch in batches:
            if batch.row > blender.top:
                write_until(batch.row)
            if batch.windows:
                logits = predictor(batch.images[: len(batch.windows)])
                for window, scores, valid in zip(batch.windows, logits, batch.valid, strict=True):
                    blender.add(window, scores, valid)
            done += batch.seen
            progress.report(done, len(windows), "windows predicted")
            check_canceled(progress)
    write_until(bottom)
