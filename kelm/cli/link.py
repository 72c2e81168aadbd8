"""``kelm link`` (one text) and ``kelm ground`` (a QA file): linking text to graph nodes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from kelm.cli._common import (
    AtLeast,
    GraphOption,
    SchedulerOption,
    WorkersOption,
    _hf_progress_bars_off,
    user_errors,
)
from kelm.linking.options import DEFAULT_CONTEXT_WINDOW

PipelineOption = Annotated[
    str | None,
    typer.Option(
        help="Installed spaCy pipeline whose lemmas (and, entity mode, part-of-speech tags) to "
        "use, e.g. en_core_web_sm (default: blank English with lookup lemmas)."
    ),
]


@user_errors
def link_command(
    text: Annotated[
        str, typer.Argument(help="The text to link (use -- before a text that starts with '-').")
    ],
    graph: GraphOption,
    mode: Annotated[
        str, typer.Option(help="concept (lemma n-grams) or entity (aliases).")
    ] = "concept",
    pipeline: PipelineOption = None,
    context_weight: Annotated[
        float | None,
        typer.Option(
            help="entity: weight of the context score against the prior, 0 to 1 (0: prior "
            "alone; default 0.5 when the sentence encoder is installed)."
        ),
    ] = None,
    context_window: Annotated[
        int, typer.Option(help="entity: tokens of context on each side of a mention.")
    ] = DEFAULT_CONTEXT_WINDOW,
    pos_filter: Annotated[
        bool,
        typer.Option(
            help="entity: drop candidates of another part of speech (needs a --pipeline with "
            "a tagger, e.g. en_core_web_sm)."
        ),
    ] = True,
    encoder: Annotated[
        Path | None,
        typer.Option(help="entity: sentence encoder folder (default: the bundled MiniLM)."),
    ] = None,
    priors: Annotated[
        Path | None,
        typer.Option(help="entity: TSV of alias, node name, count (default prior: degree)."),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print one JSON object (entity: every candidate's scores)."),
    ] = False,
) -> None:
    """Link a text to graph nodes and print the matched spans."""
    from kelm.linking.component import link_text

    options: dict[str, object] = {}
    if mode == "entity" or context_weight is not None or priors is not None:
        options = {
            "context_weight": context_weight,
            "context_window": context_window,
            "pos_filter": pos_filter,
            "encoder": str(encoder) if encoder else None,
            "priors": str(priors) if priors else None,
        }
    # One text: the sentence encoder's "Loading weights" bar would be most of what is printed.
    with _hf_progress_bars_off():
        result = link_text(graph, text, mode=mode, pipeline=pipeline, **options)
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
        return
    for span in result["spans"]:
        typer.echo(f"{span['start']}\t{span['end']}\t{span['text']}\t{'; '.join(span['names'])}")
    if not result["spans"]:
        typer.echo("no spans found", err=True)


@user_errors
def ground_command(
    graph: GraphOption,
    qa: Annotated[
        Path, typer.Option("--qa", help="CommonsenseQA / OpenBookQA JSONL or COPA XML file.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Grounded JSONL file to write.")],
    pipeline: PipelineOption = None,
    processes: Annotated[int, typer.Option(help="Worker processes."), AtLeast(1)] = 1,
    batch_size: Annotated[
        int, typer.Option(help="Statements per batch and flush."), AtLeast(1)
    ] = 1000,
    scheduler: SchedulerOption = None,
    workers: WorkersOption = None,
    partition_size: Annotated[
        int,
        typer.Option(help="--scheduler: statements per partition (the unit of resuming)."),
        AtLeast(1),
    ] = 20_000,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Ground every (question, choice) statement of a QA file in a concept graph."""
    from kelm.linking.ground import ground_file

    if scheduler is None:
        r = ground_file(
            graph,
            qa,
            out,
            pipeline=pipeline,
            processes=processes,
            batch_size=batch_size,
            progress=progress,
        )
    else:
        from kelm.cluster import dask_client
        from kelm.errors import KelmError
        from kelm.linking.ground_dask import ground_file_distributed

        if processes != 1:
            raise KelmError("--processes is for runs without --scheduler; use --workers")
        with dask_client(scheduler, workers=workers) as client:
            r = ground_file_distributed(
                graph,
                qa,
                out,
                client=client,
                pipeline=pipeline,
                batch_size=batch_size,
                partition_size=partition_size,
                progress=progress,
            )
    state = "grounded"
    if r.reused:
        state = "reused"
    elif r.resumed_from:
        state = f"resumed after {r.resumed_from:,} and grounded"
    typer.echo(
        f"{state} {r.statements:,} statements -> {r.out} in {r.seconds:.1f}s "
        f"({r.empty_question:,} without question concepts, {r.empty_answer:,} without "
        f"answer concepts)"
    )
