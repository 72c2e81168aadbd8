"""``kelm embed-kg``: train, evaluate and save KG embeddings of a graph index."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kelm.cli._common import (
    GraphOption,
    MetricsJsonOption,
    config_option,
    echo_json,
    set_option,
    settings_from,
    user_errors,
)

HeldOutOption = Annotated[
    Path | None,
    typer.Option(help="Held-out triples for filtered link prediction (MRR, Hits@1/3/10)."),
]


@user_errors
def embed_kg_command(
    ctx: typer.Context,
    graph: GraphOption,
    out: Annotated[Path, typer.Option("--out", "-o", help="Embeddings directory to write.")],
    config_file: Annotated[
        Path | None,
        config_option(
            "Settings YAML: the keys model, dim, epochs, batch_size, negatives, lr, margin, "
            "p_norm, reg, seed, threads (see configs/embed-kg-cn100k.yaml)."
        ),
    ] = None,
    overrides: Annotated[list[str] | None, set_option("epochs=5")] = None,
    # model, dim, epochs, batch_size, negatives, lr, margin, reg, seed and threads are
    # KGEConfig's fields under their names; their defaults here are the dataclass's
    # (tests/cli/test_cli_kge.py checks it) and only show in --help.
    model: Annotated[str, typer.Option(help="transe, distmult, complex or rotate.")] = "distmult",
    dim: Annotated[
        int,
        typer.Option(
            help="Embedding size (ComplEx/RotatE: of each of the real and imaginary parts)."
        ),
    ] = 100,
    epochs: Annotated[int, typer.Option(help="Passes over the graph's edges.")] = 30,
    valid: HeldOutOption = None,
    test: HeldOutOption = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="Held-out file format: cn100k (relation, head, tail[, label]) "
            "or tsv (head, relation, tail[, label]).",
        ),
    ] = "cn100k",
    classify_dev: Annotated[
        Path | None,
        typer.Option(
            help="Labelled triples (4th column 1/0, e.g. CN-100K dev1.txt) to fit the triple "
            "classification thresholds on."
        ),
    ] = None,
    classify_test: Annotated[
        Path | None,
        typer.Option(help="Labelled triples (e.g. CN-100K dev2.txt) to report accuracy on."),
    ] = None,
    threshold: Annotated[
        str,
        typer.Option(
            help="relation (one threshold per relation, the global one for relations with few "
            "dev triples) or global."
        ),
    ] = "relation",
    batch_size: Annotated[int, typer.Option(help="Positive triples per step.")] = 1000,
    negatives: Annotated[int, typer.Option(help="Random corruptions per positive.")] = 5,
    lr: Annotated[float | None, typer.Option(help="Learning rate (default per model).")] = None,
    margin: Annotated[
        float | None,
        typer.Option(help="TransE/DistMult loss margin, RotatE score offset (default per model)."),
    ] = None,
    reg: Annotated[
        float | None, typer.Option(help="L2 penalty on the batch's embeddings (default per model).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed (torch, numpy).")] = 0,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    as_json: MetricsJsonOption = False,
) -> None:
    """Train KG embeddings on a graph index, evaluate them and save them (safetensors).

    Training settings (--model, --dim, --epochs and --batch-size to --threads; p_norm has no
    flag) come from, in rising precedence: their defaults, the --config YAML, the --set
    overrides, the flags given on the command line.
    """
    from kelm.kge.train import KGEConfig, embed_kg

    config = settings_from(KGEConfig, config_file, overrides, ctx).validate()
    report = embed_kg(
        graph,
        out,
        config,
        valid=valid,
        test=test,
        fmt=fmt,
        classify_dev=classify_dev,
        classify_test=classify_test,
        threshold=threshold,
        progress=progress,
    )
    if as_json:
        echo_json(
            {
                "out": str(report.out),
                "model": config.model,
                "dim": config.dim,
                "epochs": config.epochs,
                "train_seconds": round(report.train_seconds, 3),
                "metrics": report.metrics,
            }
        )
        return
    _echo_report(report, config)


def _echo_report(report, config) -> None:
    """The text summary: training, then each evaluation that ran."""
    epochs = config.epochs
    last = f", final loss {report.losses[-1]:.4f}" if report.losses else ""
    typer.echo(
        f"trained {config.model} (dim {config.dim}) for {epochs} epoch{'s' if epochs != 1 else ''}"
        f" in {report.train_seconds:.1f}s{last}; wrote {report.out}"
    )
    for name in ("valid", "test"):
        if name in report.metrics:
            m = report.metrics[name]
            typer.echo(
                f"  {name:<5} filtered MRR {m['mrr']:.4f}  Hits@1 {m['hits@1']:.4f}  "
                f"Hits@3 {m['hits@3']:.4f}  Hits@10 {m['hits@10']:.4f}  "
                f"({m['triples']:,} triples, {m['file']['skipped_not_in_graph']:,} "
                "skipped: not in the graph)"
            )
    if "classification" in report.metrics:
        c = report.metrics["classification"]
        typer.echo(
            f"  triple classification ({c['mode']} thresholds): dev accuracy "
            f"{c['dev_accuracy']:.4f}, test accuracy {c['test_accuracy']:.4f} "
            f"({c['test']['used']:,} triples, {c['test']['skipped_not_in_graph']:,} "
            "skipped: not in the graph)"
        )
