"""``kelm retrieve``: subgraphs and question-answer paths of grounded statements."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kelm.cli._common import (
    AtLeast,
    DeviceOption,
    GraphOption,
    ProgressOption,
    config_option,
    set_option,
    settings_from,
    user_errors,
)


@user_errors
def retrieve_command(
    ctx: typer.Context,
    graph: GraphOption,
    grounded: Annotated[
        Path,
        typer.Option(
            "--grounded", help="Grounded JSONL from `kelm ground` (with its .manifest.json)."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory (shards).")],
    config_file: Annotated[
        Path | None,
        config_option(
            "Settings YAML: the keys max_nodes, hops, paths, scorer, model, context, entity_emb, "
            "relation_emb, kge, shard_size (see configs/retrieve-cn100k.yaml)."
        ),
    ] = None,
    overrides: Annotated[list[str] | None, set_option("hops=2")] = None,
    # The settings below are RetrieveOptions' fields under their names; their defaults here
    # are the dataclass's (tests/cli/test_cli_retrieve.py checks it) and only show in --help.
    max_nodes: Annotated[
        int, typer.Option(help="Nodes per subgraph (context node included).")
    ] = 200,
    hops: Annotated[int, typer.Option(help="Longest question-answer path, in hops.")] = 3,
    paths: Annotated[int, typer.Option(help="Paths kept per question-answer pair.")] = 100,
    scorer: Annotated[
        str, typer.Option(help="Relevance scorer for the node cap: cosine, lm or none.")
    ] = "cosine",
    model: Annotated[
        Path | None,
        typer.Option(
            help="Model folder: sentence encoder (cosine; default the bundled all-MiniLM-L6-v2) "
            "or language model (lm)."
        ),
    ] = None,
    context: Annotated[
        bool, typer.Option(help="Add a context node joined to the question and answer concepts.")
    ] = False,
    entity_emb: Annotated[
        Path | None, typer.Option(help="Entity embeddings .npy [nodes, d] for KagNet path scores.")
    ] = None,
    relation_emb: Annotated[
        Path | None,
        typer.Option(help="Relation embeddings .npy [R or 2R, d] for KagNet path scores."),
    ] = None,
    kge: Annotated[
        Path | None,
        typer.Option(
            help="A `kelm embed-kg` output directory for KagNet path scores (checked against "
            "the graph's checksum)."
        ),
    ] = None,
    shard_size: Annotated[int, typer.Option(help="Statements per shard.")] = 1000,
    batch_size: Annotated[int, typer.Option(help="Scorer batch size."), AtLeast(1)] = 128,
    device: DeviceOption = "auto",
    force: Annotated[bool, typer.Option(help="Rebuild even if a cached result matches.")] = False,
    progress: ProgressOption = True,
) -> None:
    """Retrieve a subgraph and question-answer paths for every grounded statement.

    Settings (--max-nodes to --shard-size) come from, in rising precedence: their defaults,
    the --config YAML, the --set overrides, the flags given on the command line.
    """
    from kelm.retrieval.retrieve import RetrieveOptions, retrieve, summary

    options = settings_from(RetrieveOptions, config_file, overrides, ctx)
    report = retrieve(
        graph,
        grounded,
        out,
        options,
        batch_size=batch_size,
        device=device,
        force=force,
        progress=progress,
    )
    typer.echo(summary(report))
