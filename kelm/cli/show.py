"""``kelm show``: draw the subgraph retrieved for one (question, choice) statement."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kelm.cli._common import GraphOption, user_errors


@user_errors
def show_command(
    graph: GraphOption,
    question: Annotated[str, typer.Option(help="The question text.")],
    choice: Annotated[str, typer.Option(help="One answer choice.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG file to write.")],
    max_nodes: Annotated[int, typer.Option(help="Nodes drawn at most.")] = 30,
    hops: Annotated[int, typer.Option(help="Longest question-answer path, in hops.")] = 2,
    paths: Annotated[int, typer.Option(help="Paths kept per question-answer pair.")] = 20,
    kge: Annotated[
        Path | None,
        typer.Option(help="`kelm embed-kg` directory: highlight the best paths by KagNet score."),
    ] = None,
    highlight: Annotated[int, typer.Option(help="How many paths to highlight.")] = 3,
) -> None:
    """Draw the subgraph retrieved for one (question, choice) statement as a PNG (--max-nodes,
    --hops and --paths within the limits of `kelm retrieve`)."""
    from kelm.retrieval.draw import show_statement

    written = show_statement(
        graph,
        question,
        choice,
        out,
        max_nodes=max_nodes,
        hops=hops,
        paths=paths,
        kge=kge,
        highlight=highlight,
    )
    typer.echo(f"wrote {written}")
