"""`cmtgeo info`: report versions, devices and optional backends."""

from __future__ import annotations

import json

import click

from cmt_geo.environment import environment_report


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def info(as_json: bool) -> None:
    """Show versions, compute devices and optional backends.

    \b
    $ cmtgeo info --json
    """
    report = environment_report()
    if as_json:
        click.echo(json.dumps(report))
        return
    for key, value in report.items():
        if isinstance(value, dict):
            click.echo(f"{key}:")
            for name, item in value.items():
                click.echo(f"  {name}: {_text(item)}")
        else:
            click.echo(f"{key}: {_text(value)}")


def _text(value: object) -> str:
    if value is None:
        return "not installed"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)
