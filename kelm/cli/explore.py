"""``kelm explore``: a local web page to explore questions, their graphs and the runs' answers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kelm.cli._common import AtLeast, DeviceOption, GraphOption, user_errors


@user_errors
def explore_command(
    graph: GraphOption,
    model: Annotated[
        list[Path] | None,
        typer.Option("--model", "-m", help="A `kelm train` run directory (repeatable)."),
    ] = None,
    lm: Annotated[
        str | None,
        typer.Option(
            "--lm",
            help="A causal LM scoring the choices zero-shot, loaded on the first question: a "
            "Hugging Face id, a folder, a .gguf file, or 'default' (SmolLM2-135M). A `kelm "
            "evaluate --zero-shot` output folder given as --model does the same.",
        ),
    ] = None,
    lm_normalization: Annotated[
        str, typer.Option(help="The --lm column's score: sum, mean (per token) or pmi.")
    ] = "mean",
    qa: Annotated[
        Path | None,
        typer.Option(
            "--qa", help="A QA file whose questions the page lists (answer keys optional)."
        ),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Address to serve on (127.0.0.1: this machine only).")
    ] = "127.0.0.1",
    port: Annotated[
        int | None, typer.Option(help="Port to serve on (default: 7860 or the next free one).")
    ] = None,
    hops: Annotated[int, typer.Option(help="Longest question-answer path drawn, in hops.")] = 2,
    max_nodes: Annotated[int, typer.Option(help="Nodes drawn per choice at most.")] = 30,
    paths: Annotated[int, typer.Option(help="Paths listed per question-answer pair.")] = 20,
    kge: Annotated[
        Path | None,
        typer.Option(help="`kelm embed-kg` directory: order the paths by KagNet score."),
    ] = None,
    device: DeviceOption = "auto",
    threads: Annotated[
        int | None, typer.Option(help="CPU threads for the models (default: torch's)."), AtLeast(1)
    ] = None,
) -> None:
    """Open a local web page: type a question (or pick one from --qa) and see its linked spans,
    the subgraph and paths retrieved per choice, each --model run's scores and attention and
    the --lm log-likelihoods; browse the graph. Stop it with Ctrl+C."""
    from kelm.explore.session import Explorer

    if port is not None and not 1 <= port <= 65535:
        from kelm.errors import KelmError

        raise KelmError(f"--port must be between 1 and 65535, not {port}")
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    _check_app_dependencies()
    explorer = Explorer(
        graph,
        runs=model or [],
        qa_file=qa,
        hops=hops,
        max_nodes=max_nodes,
        paths=paths,
        kge=kge,
        device=device or "cpu",
        lm=lm,
        lm_normalization=lm_normalization,
    )
    from kelm.explore.app import launch
    from kelm.explore.lm import ZeroShotLM

    app = launch(explorer, host=host, port=port, block=False)
    typer.echo(f"kelm explore on {app.local_url} (Ctrl+C stops it)")
    for run in explorer.runs:  # the page is up; the LM loads while it is being looked at
        if isinstance(run, ZeroShotLM):
            run.load_in_background()
    try:
        app.block_thread()
    finally:
        app.close()


def _check_app_dependencies() -> None:
    """gradio and pyvis (the ``explore`` extra), before minutes go into loading runs."""
    import importlib.util

    from kelm.errors import KelmError

    missing = [name for name in ("gradio", "pyvis") if importlib.util.find_spec(name) is None]
    if missing:
        raise KelmError(f"kelm explore needs {' and '.join(missing)}: pip install 'kelm[explore]'")
