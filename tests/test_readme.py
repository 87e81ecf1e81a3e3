"""Every command and Python snippet in the README runs as written (in a fresh folder, in README order).

`console` blocks hold commands (`$ ` lines) and `python` blocks hold snippets; both run here, `cmtgeo` commands
through click's runner. `make` commands are checked to be Makefile targets: CI runs `make test` (and with it
`make install` and `make qgis-test`, which builds the plugin zip as `make plugin` does), and tests/test_notebooks.py
runs examples/demo.py, the script `make demo` runs. Blocks in other fences are not run: `text` (folder layouts) and
`sh` (building mamba-ssm's CUDA kernel, which needs a GPU machine with the CUDA toolkit).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner
from cmt_geo_cli.main import cmtgeo

REPOSITORY = Path(__file__).resolve().parents[1]
README = REPOSITORY / "README.md"
BLOCK = re.compile(r"```(console|python)\n(.*?)```", re.DOTALL)


def _blocks() -> list[tuple[str, str]]:
    return [(kind, body) for kind, body in BLOCK.findall(README.read_text())]


def _commands_in(body: str) -> list[str]:
    return [line.split("  #")[0].strip().removeprefix("$ ") for line in body.splitlines() if line.startswith("$ ")]


def _commands() -> list[str]:
    return [command for kind, body in _blocks() if kind == "console" for command in _commands_in(body)]


def test_the_readme_starts_with_make_demo_then_make_test() -> None:
    commands = _commands()
    assert commands[:2] == ["make demo", "make test"]
    assert any(command.startswith("cmtgeo data synthetic") for command in commands)
    assert {"train", "predict", "vectorize", "evaluate", "convert", "info"} <= {
        shlex.split(command)[1] for command in commands if command.startswith(("cmtgeo", ".venv/bin/cmtgeo"))
    }
    assert sum(kind == "python" for kind, _ in _blocks()) >= 2


def test_every_make_command_is_a_makefile_target() -> None:
    makefile = (REPOSITORY / "Makefile").read_text()
    targets = {shlex.split(command)[1] for command in _commands() if command.startswith("make ")}
    assert {"demo", "test", "install"} <= targets
    for target in targets:
        assert re.search(rf"^{re.escape(target)}:", makefile, re.MULTILINE), f"make {target} is not in the Makefile"
    recipe = re.search(r"^demo:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert recipe is not None
    assert "examples/demo.py" in recipe.group(1), "make demo must run examples/demo.py (test_notebooks.py runs it)"


def _reference_rows() -> dict[str, str]:
    """The README's command reference table: command words (e.g. "data check") -> the options column."""
    rows = re.findall(r"^\| `cmtgeo ([a-z ]+?)(?: [A-Z\[].*?)?` \|.*\| (.*) \|$", README.read_text(), re.MULTILINE)
    return dict(rows)


def test_the_command_reference_lists_every_command_with_real_options() -> None:
    import click

    rows = _reference_rows()
    commands: dict[str, click.Command] = {}
    for name, command in cmtgeo.commands.items():
        if isinstance(command, click.Group):
            commands.update({f"{name} {sub}": subcommand for sub, subcommand in command.commands.items()})
        else:
            commands[name] = command
    assert set(rows) == set(commands), "the README's command table and the CLI's commands differ"
    for name, options in rows.items():
        known = {opt for param in commands[name].params for opt in param.opts}
        named = set(re.findall(r"(?<![\w-])(-o|--[a-z][a-z-]*)", options))
        assert named <= known, (name, named - known)


@pytest.mark.slow
def test_every_readme_command_and_snippet_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks run in README order, so a command can use what an earlier snippet wrote (and the reverse).

    The folder stands for the repository root (its `configs/` is there). Commands on the reader's own data (paths
    under `~/`, here an empty home folder) must fail saying what is missing, never on anything else.
    """
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "repository"
    work.mkdir()
    (work / "configs").symlink_to(REPOSITORY / "configs", target_is_directory=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    runner = CliRunner()
    namespace: dict[str, object] = {}
    for kind, body in _blocks():
        if kind == "python":
            exec(compile(body, str(README), "exec"), namespace)
            continue
        for command in _commands_in(body):
            words = shlex.split(command)
            if words[0] == "make":  # checked by test_every_make_command_is_a_makefile_target
                continue
            assert words[0] in ("cmtgeo", ".venv/bin/cmtgeo"), command
            result = runner.invoke(cmtgeo, words[1:])
            if "~/" in command:  # the reader's own data: absent here, said plainly
                assert result.exit_code in (1, 2), (command, result.output)
                assert "does not exist" in result.output or str(home) in result.output, (command, result.output)
            else:
                assert result.exit_code == 0, (command, result.output)
