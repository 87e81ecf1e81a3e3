"""Build the installable plugin zip (`make plugin`): dist/cmt_geo_qgis-VERSION.zip with one top folder.

Only the plugin's own files go in (no __pycache__, .pyc or dotfiles, which the QGIS plugin repository refuses), with
fixed timestamps so the same sources give the same zip. Runs under any Python 3.9+, standard library only.

    $ python3 qgis_plugin/build_zip.py [--output DIR]
"""

from __future__ import annotations

import argparse
import configparser
import sys
import zipfile
from pathlib import Path

PLUGIN = Path(__file__).resolve().parent / "cmt_geo_qgis"
_FIXED_TIME = (2020, 1, 1, 0, 0, 0)


def plugin_version() -> str:
    """The version in metadata.txt."""
    parser = configparser.ConfigParser()
    parser.read(PLUGIN / "metadata.txt", encoding="utf-8")
    return parser["general"]["version"]


def plugin_files() -> list[Path]:
    """The files that belong in the zip, sorted."""
    return sorted(
        path
        for path in PLUGIN.rglob("*")
        if path.is_file()
        and path.suffix not in (".pyc", ".pyo")
        and not any(part.startswith(".") or part == "__pycache__" for part in path.relative_to(PLUGIN).parts)
    )


def build(output_dir: Path) -> Path:
    """Write the zip into `output_dir` and return its path."""
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / f"{PLUGIN.name}-{plugin_version()}.zip"
    staging = target.with_name(target.name + ".partial")
    with zipfile.ZipFile(staging, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in plugin_files():
            info = zipfile.ZipInfo(f"{PLUGIN.name}/{path.relative_to(PLUGIN).as_posix()}", _FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())
    staging.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("dist"), help="folder for the zip (default: dist)")
    target = build(parser.parse_args(argv).output)
    sys.stdout.write(f"wrote {target}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
