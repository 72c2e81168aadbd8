"""The ``kelm`` command line: a thin Typer layer over the library functions.

Every command parses its options, calls one library function and prints the result. A
:class:`~kelm.errors.KelmError` becomes a one-line ``error: ...`` on stderr and exit status 2.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from kelm.errors import KelmError

app = typer.Typer(
    name="kelm",
    help="Knowledge-enhanced language modeling: graph indices, entity linking, retrieval, "
    "knowledge-fused models and commonsense QA.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
graph_app = typer.Typer(help="Build and inspect graph indices.", no_args_is_help=True)
data_app = typer.Typer(help="Datasets and knowledge graphs: where they are, how to fetch them.",
                       no_args_is_help=True)
app.add_typer(graph_app, name="graph")
app.add_typer(data_app, name="data")


def user_errors(fn):
    """Turn a KelmError into a one-line message and exit status 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except KelmError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper


def echo_json(obj) -> None:
    typer.echo(json.dumps(obj, indent=2, ensure_ascii=False))


# ---------------------------------------------------------------------------------- graph
@graph_app.command("build")
@user_errors
def graph_build(
    inputs: Annotated[list[Path], typer.Argument(help="Input files (a directory for wordnet).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Index directory to write.")],
    fmt: Annotated[str, typer.Option(
        "--format", "-f",
        help="conceptnet (5-column assertions .csv/.csv.gz), cn100k, tsv, rdf (N-Triples, "
        "Turtle, .gz) or wordnet (database directory).")] = "conceptnet",
    strict: Annotated[bool, typer.Option(help="Fail on the first malformed line.")] = False,
    relation_map: Annotated[Path | None, typer.Option(
        help="YAML relation merge mapping (conceptnet) overriding the default 17 groups.")] = None,
    merge_relations: Annotated[bool, typer.Option(
        help="conceptnet: merge relations into groups (off: keep ConceptNet's names).")] = True,
    english_only: Annotated[bool, typer.Option(
        help="conceptnet: keep only edges with both ends in /c/en/.")] = True,
    keep_self_loops: Annotated[bool, typer.Option(help="Keep head == tail edges.")] = False,
    keep_duplicates: Annotated[bool, typer.Option(
        help="Keep repeated (head, relation, tail) edges instead of merging them.")] = False,
    literals: Annotated[str, typer.Option(
        help="rdf: 'keep' non-label literals as node attributes, or 'drop' them.")] = "keep",
    lowercase: Annotated[bool, typer.Option(help="tsv/cn100k: lower-case node names.")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Build a graph index from knowledge-graph files."""
    from kelm.graph.build import FORMATS, build_index
    from kelm.graph.sources.base import BuildOptions

    if fmt not in FORMATS:
        raise KelmError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if literals not in ("keep", "drop"):
        raise KelmError(f"--literals must be 'keep' or 'drop', not {literals!r}")
    options = BuildOptions(format=fmt, strict=strict,
                           relation_map=str(relation_map) if relation_map else None,
                           merge_relations=merge_relations, english_only=english_only,
                           keep_self_loops=keep_self_loops, keep_duplicates=keep_duplicates,
                           literals=literals, lowercase=lowercase)
    report = build_index(inputs, out, options, progress=progress)
    for line in report.issues.summary():
        typer.echo(line, err=True)
    c = report.counts
    typer.echo(f"built {out}: {c['nodes']:,} nodes, {c['edges']:,} edges, "
               f"{c['relations']} relations in {report.seconds:.1f}s")


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
        typer.echo(f"  degree     min {d['min']}, median {d['median']:g}, mean {d['mean']:.2f}, "
                   f"max {d['max']}, isolated {d['isolated']:,}")
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


# ---------------------------------------------------------------------------------- data
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


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app(args=argv if argv is not None else sys.argv[1:], prog_name="kelm")


if __name__ == "__main__":
    main()
