"""Packaging: every package folder ships, and the CLI never installs as a bare top-level `cli`."""

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = set()
    for name, folder in config["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((name, *parts)))
    assert found == listed, f"add to / remove from [tool.setuptools] packages: {sorted(found ^ listed)}"


def test_cli_installs_as_cmt_geo_cli_not_cli(tmp_path: Path) -> None:
    code = "import importlib.util as u; print(u.find_spec('cli') is None, u.find_spec('cmt_geo_cli') is not None)"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.stdout.split() == ["True", "True"], out.stderr
