"""`cmtgeo predict`: classify rasters with a checkpoint into class COGs (and confidence, probabilities, polygons)."""

from __future__ import annotations

from pathlib import Path

import click

from ..options import device_option, make_progress, output_option, overwrite_option, progress_option, tiling_options

_RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".jp2", ".img")


def _inputs(paths: tuple[Path, ...]) -> list[Path]:
    """The rasters named, and those directly inside named folders."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix.lower() in _RASTER_SUFFIXES and p.is_file())
        else:
            found.append(path)
    if not found:
        raise click.UsageError(f"no rasters ({', '.join(_RASTER_SUFFIXES)}) in {', '.join(map(str, paths))}")
    return found


def _bands(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a list of band numbers; use e.g. 3,2,1", param_hint="--bands"
        ) from None


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@output_option(help="Class raster to write (a folder when there are several inputs).")
@click.option(
    "--checkpoint", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Model."
)
@click.option(
    "--vector", type=click.Path(path_type=Path), help="Also write polygons (.gpkg, .shp, .parquet, .geojson)."
)
@click.option("--confidence", type=click.Path(path_type=Path), help="Also write the max probability (uint8 %).")
@click.option(
    "--probabilities", type=click.Path(path_type=Path), help="Also write every class's probability (uint8 %)."
)
@tiling_options
@click.option("--bands", help="1-based input bands in the model's band order, e.g. 3,2,1 [default: by name or order].")
@click.option("--nodata", type=float, help="Input no-data value [default: the raster's own mask].")
@click.option("--resample", is_flag=True, help="Predict at the model's training pixel size, write at the input's.")
@click.option(
    "--compile",
    "compile_model",
    is_flag=True,
    help="Compile the model first (minutes; needs a C++ compiler on CPU): faster batches, for large rasters.",
)
@device_option
@overwrite_option
@progress_option
def predict(
    inputs: tuple[Path, ...],
    output: Path,
    checkpoint: Path,
    vector: Path | None,
    confidence: Path | None,
    probabilities: Path | None,
    tile_size: int | None,
    overlap: int | None,
    batch_size: int,
    tta: str,
    bands: str | None,
    nodata: float | None,
    resample: bool,
    compile_model: bool,
    device: str,
    overwrite: bool,
    progress_kind: str,
) -> None:
    """Classify rasters of any size into class COGs on their exact grids, streaming and seamlessly blended.

    INPUT may be GeoTIFFs, VRTs or folders of them; with several inputs, -o (and --vector, --confidence,
    --probabilities) name folders that receive one file per input. Under torchrun, each process predicts a band
    of rows (on its own GPU when there are GPUs) and rank 0 writes the outputs.

    \b
    $ cmtgeo predict ortho.tif -o classes.tif --checkpoint model.ckpt --vector classes.gpkg
    $ torchrun --nproc-per-node 4 --no-python cmtgeo predict ortho.tif -o classes.tif --checkpoint model.ckpt
    """
    from cmt_geo.inference import PredictOptions, predict_raster
    from cmt_geo.inference.engine import join_launched_group, load_model

    sources = _inputs(inputs)
    device = join_launched_group(device)
    several = len(sources) > 1 or inputs[0].is_dir()
    options = PredictOptions(
        tile_size=tile_size,
        overlap=overlap,
        batch_size=batch_size,
        tta=tta,  # type: ignore[arg-type]
        bands=_bands(bands),
        nodata=nodata,
        device=device,
        resample=resample,
        compile=compile_model,
    )
    model = load_model(checkpoint)
    for folder in (output, vector, confidence, probabilities):
        if several and folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
    for source in sources:

        def target(base: Path | None, suffix: str = ".tif") -> Path | None:
            """`base` itself, or `base/<input stem><suffix>` when there are several inputs."""
            return base / f"{source.stem}{suffix}" if several and base is not None else base  # noqa: B023

        vector_path = target(vector, ".gpkg")
        written = predict_raster(
            source,
            target(output) or output,
            model,
            options=options,
            confidence=target(confidence),
            probabilities=target(probabilities),
            overwrite=overwrite,
            progress=make_progress(progress_kind),
        )
        if vector_path is not None:
            from cmt_geo.vector import vectorize

            vectorize(written.classes, vector_path, overwrite=overwrite, progress=make_progress(progress_kind))
        click.echo(f"wrote {written.classes}" + (f" and {vector_path}" if vector_path else ""))
