"""The ``kelm`` command line: a thin Typer layer over the library functions.

One module per command group (as spaCy's CLI): :mod:`~kelm.cli.graph`, :mod:`~kelm.cli.data`,
:mod:`~kelm.cli.link` (link, ground), :mod:`~kelm.cli.retrieve`, :mod:`~kelm.cli.kge`
(embed-kg), :mod:`~kelm.cli.train`, :mod:`~kelm.cli.evaluate` (evaluate, compare),
:mod:`~kelm.cli.pretrain` (pretrain, probe) and :mod:`~kelm.cli.show`; what they share is in
:mod:`kelm.cli._common`. Every command parses its options, calls one library function and
prints the result. A :class:`~kelm.errors.KelmError` becomes a one-line ``error: ...`` on
stderr and exit status 2, and so does a usage error of Click's (an unknown option, a missing
argument: :mod:`kelm.cli._usage`). Heavy libraries (torch, transformers, spaCy) are imported
inside the commands, so ``kelm --help`` stays fast.
"""

from __future__ import annotations

import logging
import sys

import typer

from kelm.cli._usage import KelmGroup
from kelm.cli.data import data_app
from kelm.cli.evaluate import compare_command, evaluate_command
from kelm.cli.explore import explore_command
from kelm.cli.graph import graph_app
from kelm.cli.kge import embed_kg_command
from kelm.cli.link import ground_command, link_command
from kelm.cli.pretrain import pretrain_command, probe_command
from kelm.cli.retrieve import retrieve_command
from kelm.cli.show import show_command
from kelm.cli.train import train_command

app = typer.Typer(
    name="kelm",
    cls=KelmGroup,  # Click's own usage errors as one `error:` line too
    help="Knowledge-enhanced language modeling: graph indices, entity linking, retrieval, "
    "knowledge-fused models and commonsense QA.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# `kelm --help` lists the commands in this order, then the groups.
app.command("retrieve")(retrieve_command)
app.command("link")(link_command)
app.command("ground")(ground_command)
app.command("embed-kg")(embed_kg_command)
app.command("train")(train_command)
app.command("evaluate")(evaluate_command)
app.command("compare")(compare_command)
app.command("pretrain")(pretrain_command)
app.command("probe")(probe_command)
app.command("show")(show_command)
app.command("explore")(explore_command)
app.add_typer(graph_app, name="graph")
app.add_typer(data_app, name="data")


def main(argv: list[str] | None = None) -> None:
    """The ``kelm`` entry point (``python -m kelm`` too): ``argv`` defaults to ``sys.argv``."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app(args=argv if argv is not None else sys.argv[1:], prog_name="kelm")
