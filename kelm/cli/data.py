"""``kelm data download | list``: datasets and knowledge graphs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kelm.cli._common import user_errors

data_app = typer.Typer(
    help="Datasets and knowledge graphs: where they are, how to fetch them.", no_args_is_help=True
)


@data_app.command("download")
@user_errors
def data_download(
    name: Annotated[str, typer.Argument(help="Dataset name (see `kelm data list`).")],
    data_dir: Annotated[Path | None, typer.Option(help="Target data directory.")] = None,
) -> None:
    """Fetch a public dataset, verify its checksum, resume a partial download."""
    from kelm.data.download import download

    for path in download(name, data_dir):
        typer.echo(f"ok {path}")


@data_app.command("list")
@user_errors
def data_list() -> None:
    """List the datasets `kelm data download` knows."""
    from kelm.data.download import REGISTRY

    for name, entry in REGISTRY.items():
        typer.echo(f"{name:<16} {entry.description}")
