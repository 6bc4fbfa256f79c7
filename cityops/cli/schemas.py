"""The message contracts as JSON Schema files."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="The message contracts.", no_args_is_help=True)


@app.command("export")
def schemas_export(folder: Path = typer.Argument(None, help="where to write; default: schemas/json in the checkout")) -> None:
    """Write a JSON Schema file per message other systems send (intake reports, task events, rulings)."""
    from schemas import jsonschema

    for path in jsonschema.export(folder or jsonschema.FOLDER):
        typer.echo(path)
