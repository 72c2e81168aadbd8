"""``kelm graph build | info | export``: graph indices."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kelm.cli._common import (
    AtLeast,
    ProgressOption,
    SchedulerOption,
    WorkersOption,
    dataclass_fields,
    echo_json,
    user_errors,
)
from kelm.errors import KelmError

graph_app = typer.Typer(help="Build and inspect graph indices.", no_args_is_help=True)


@graph_app.command("build")
@user_errors
def graph_build(
    ctx: typer.Context,
    inputs: Annotated[list[Path], typer.Argument(help="Input files (a directory for wordnet).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Index directory to write.")],
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="conceptnet (5-column assertions .csv/.csv.gz), cn100k, tsv, rdf (N-Triples, "
            "Turtle, .gz) or wordnet (database directory).",
        ),
    ] = "conceptnet",
    strict: Annotated[bool, typer.Option(help="Fail on the first malformed line.")] = False,
    relation_map: Annotated[
        Path | None,
        typer.Option(
            help="YAML relation merge mapping (conceptnet) overriding the default 17 groups."
        ),
    ] = None,
    merge_relations: Annotated[
        bool,
        typer.Option(
            help="conceptnet: merge relations into groups (off: keep ConceptNet's names)."
        ),
    ] = True,
    english_only: Annotated[
        bool, typer.Option(help="conceptnet: keep only edges with both ends in /c/en/.")
    ] = True,
    keep_self_loops: Annotated[bool, typer.Option(help="Keep head == tail edges.")] = False,
    keep_duplicates: Annotated[
        bool,
        typer.Option(help="Keep repeated (head, relation, tail) edges instead of merging them."),
    ] = False,
    literals: Annotated[
        str, typer.Option(help="rdf: 'keep' non-label literals as node attributes, or 'drop' them.")
    ] = "keep",
    lowercase: Annotated[bool, typer.Option(help="tsv/cn100k: lower-case node names.")] = False,
    scheduler: SchedulerOption = None,
    workers: WorkersOption = None,
    partition_mb: Annotated[
        int,
        typer.Option(help="--scheduler: input MB per partition parsed by one task."),
        AtLeast(1),
    ] = 64,
    progress: ProgressOption = True,
) -> None:
    """Build a graph index from knowledge-graph files (on a Dask cluster with --scheduler)."""
    from kelm.graph.build import FORMATS, build_index
    from kelm.graph.sources.base import BuildOptions

    if fmt not in FORMATS:
        raise KelmError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if literals not in ("keep", "drop"):
        raise KelmError(f"--literals must be 'keep' or 'drop', not {literals!r}")
    # The flags are named after BuildOptions' fields (--format aside); build_index sets progress.
    options = BuildOptions(format=fmt, **dataclass_fields(BuildOptions, ctx.params))
    if scheduler is None:
        report = build_index(inputs, out, options, progress=progress)
    else:
        from kelm.cluster import dask_client
        from kelm.graph.distributed import build_index_distributed, check_inputs

        check_inputs(inputs, options)  # before a cluster is started
        with dask_client(scheduler, workers=workers) as client:
            report = build_index_distributed(
                inputs, out, options, client=client, partition_bytes=partition_mb << 20
            )
    for line in report.issues.summary():
        typer.echo(line, err=True)
    c = report.counts
    typer.echo(
        f"built {out}: {c['nodes']:,} nodes, {c['edges']:,} edges, "
        f"{c['relations']} relations in {report.seconds:.1f}s"
    )


@graph_app.command("info")
@user_errors
def graph_info(
    index: Annotated[Path, typer.Argument(help="Index directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Summarise an index: nodes, edges, relations with counts, degree statistics."""
    from kelm.graph.index import GraphIndex

    info = GraphIndex.load(index).info()
    if as_json:
        echo_json(info)
        return
    typer.echo(f"{info['path']} ({info['format']})")
    typer.echo(f"  nodes      {info['nodes']:>12,}")
    typer.echo(f"  edges      {info['edges']:>12,}")
    typer.echo(f"  relations  {len(info['relations']):>12,} (+ as many inverses)")
    if info["degree"]:
        d = info["degree"]
        typer.echo(
            f"  degree     min {d['min']}, median {d['median']:g}, mean {d['mean']:.2f}, "
            f"max {d['max']}, isolated {d['isolated']:,}"
        )
    forward = {k: v for k, v in info["relations"].items() if not k.startswith("~")}
    for name, count in sorted(forward.items(), key=lambda kv: -kv[1]):
        typer.echo(f"    {name:<28} {count:>10,}")


@graph_app.command("export")
@user_errors
def graph_export(
    index: Annotated[Path, typer.Argument(help="Index directory.")],
    to: Annotated[str, typer.Option("--to", help="graphml or edgelist.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output file.")] = None,
) -> None:
    """Export an index as GraphML or a TSV edge list (head, relation, tail, weight)."""
    from kelm.graph.export import export_index

    path = export_index(index, to, out)
    typer.echo(f"wrote {path}")
