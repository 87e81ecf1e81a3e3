"""Dataset fixtures: each tests/data/<name>/data.py script generates its dataset's tiny real layout."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

HERE = Path(__file__).parent


def fixture_script(name: str) -> ModuleType:
    """The tests/data/<name>/data.py module."""
    spec = importlib.util.spec_from_file_location(f"fixture_{name}", HERE / name / "data.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Generate each dataset once per session; tests must not change these folders (use `dataset_copy`)."""
    made: dict[str, Path] = {}

    def make(name: str) -> Path:
        if name not in made:
            root = tmp_path_factory.mktemp(name)
            fixture_script(name).generate(root)
            made[name] = root
        return made[name]

    return make


@pytest.fixture
def dataset_copy(pristine: Callable[[str], Path], tmp_path: Path) -> Callable[[str], Path]:
    """A private copy of a dataset fixture that a test may break."""

    def copy(name: str) -> Path:
        return Path(shutil.copytree(pristine(name), tmp_path / name))

    return copy
