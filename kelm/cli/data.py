"""``kelm data download | list | synthetic``: datasets, knowledge graphs and the
knowledge-necessary task."""

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
    names: Annotated[
        list[str], typer.Argument(help="Dataset names (see `kelm data list`).", metavar="NAME...")
    ],
    data_dir: Annotated[Path | None, typer.Option(help="Target data directory.")] = None,
) -> None:
    """Fetch public datasets, verify their checksums, resume a partial download.

    $KELM_DATA_MIRROR=URL fetches every file from URL/<its path in the data directory>."""
    from kelm.data.download import REGISTRY, download
    from kelm.errors import KelmError

    unknown = [name for name in names if name not in REGISTRY]
    if unknown:  # before any transfer: a typo in the last name should not cost the first ones
        raise KelmError(f"unknown dataset {unknown[0]!r}; known datasets: {', '.join(REGISTRY)}")
    for name in names:
        for path in download(name, data_dir):
            typer.echo(f"ok {path}")


@data_app.command("list")
@user_errors
def data_list() -> None:
    """List the datasets `kelm data download` knows."""
    from kelm.data.download import REGISTRY

    for name, entry in REGISTRY.items():
        typer.echo(f"{name:<16} {entry.description}")


@data_app.command("synthetic")
@user_errors
def data_synthetic(
    out: Annotated[Path, typer.Option(help="Folder for graph.tsv, train/test.jsonl, manifest.")],
    hops: Annotated[
        int, typer.Option(help="1: head -rel-> answer; 2: head -IsA-> class -rel->.")
    ] = 1,
    train_questions: Annotated[int, typer.Option(help="Training questions.")] = 2400,
    test_questions: Annotated[int, typer.Option(help="Test questions (unseen heads).")] = 600,
    choices: Annotated[int, typer.Option(help="Choices per question.")] = 5,
    linked_distractors: Annotated[
        int, typer.Option(help="Distractors linked to the head by another relation.")
    ] = 2,
    seed: Annotated[int, typer.Option(help="The one seed of words, graph and questions.")] = 0,
) -> None:
    """Write a knowledge-necessary QA task: a graph of made-up words and questions that only
    the graph answers (a text-only model stays at chance). Index the graph with
    `kelm graph build --format tsv OUT/graph.tsv --out GRAPH`."""
    from kelm.data.synthetic import SyntheticTaskConfig, make_task, write_task

    cfg = SyntheticTaskConfig(
        hops=hops,
        train_questions=train_questions,
        test_questions=test_questions,
        choices=choices,
        linked_distractors=linked_distractors,
        seed=seed,
    )
    paths = write_task(make_task(cfg), out)
    for name in ("graph.tsv", "train.jsonl", "test.jsonl"):
        typer.echo(f"ok {paths[name]}")
