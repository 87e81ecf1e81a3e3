"""Every command and Python snippet in the README runs as written (in a fresh folder, in README order)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner
from cmt_geo_cli.main import cmtgeo

README = Path(__file__).parent.parent / "README.md"
BLOCK = re.compile(r"```(console|python)\n(.*?)```", re.DOTALL)


def _blocks() -> list[tuple[str, str]]:
    return [(kind, body) for kind, body in BLOCK.findall(README.read_text())]


def _commands_in(body: str) -> list[str]:
    return [line.split("#")[0].strip().removeprefix("$ ") for line in body.splitlines() if line.startswith("$ ")]


def _commands() -> list[str]:
    return [command for kind, body in _blocks() if kind == "console" for command in _commands_in(body)]


def test_the_readme_shows_commands_and_snippets() -> None:
    commands = _commands()
    assert commands[:2] == ["make test", "make install"]
    assert any(command.startswith("cmtgeo data synthetic") for command in commands)
    assert sum(kind == "python" for kind, _ in _blocks()) >= 2


@pytest.mark.slow
def test_every_readme_command_and_snippet_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks run in README order, so a command can use what an earlier snippet wrote (and the reverse)."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    namespace: dict[str, object] = {}
    for kind, body in _blocks():
        if kind == "python":
            exec(compile(body, str(README), "exec"), namespace)
            continue
        for command in _commands_in(body):
            words = shlex.split(command)
            if words[0] == "make":  # CI runs `make test` itself; the others install or lint
                continue
            assert words[0] in ("cmtgeo", ".venv/bin/cmtgeo"), command
            result = runner.invoke(cmtgeo, words[1:])
            if any(word.startswith("~/") for word in words):  # the reader's own data: absent here, said plainly
                assert result.exit_code == 2, (command, result.output)
                assert "does not exist" in result.stderr, command
            else:
                assert result.exit_code == 0, (command, result.output)
