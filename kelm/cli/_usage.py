"""Click's own errors (an unknown option, a missing argument, a value of the wrong type) as one
line: ``error: <message> (see kelm COMMAND --help)`` on stderr and exit status 2, the rule of
every kelm error, instead of Typer's usage line and boxed panel.

The root command's class :class:`KelmGroup` catches them where Click raises them, in
:meth:`~KelmGroup.make_context` (the root's own options) and :meth:`~KelmGroup.invoke` (every
subcommand and group below it), so ``kelm``, ``python -m kelm`` and Typer's test runner all
print the same line; Click's exit codes, ``--help`` and a bare command group printing its help
are left as they are.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import typer
from typer.core import TyperGroup

try:  # typer >= 0.29 vendors Click as typer._click: click's own classes do not match
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, NoSuchOption
except ImportError:  # pragma: no cover - older typer runs on click itself
    from click.exceptions import ClickException, NoArgsIsHelpError, NoSuchOption


def usage_line(exc: ClickException) -> str:
    """The one line that replaces Click's message for ``exc`` (without ``error: ``)."""
    message = " ".join(exc.format_message().split()).rstrip(".")
    if message[:1].isupper() and message[1:2].islower():  # Click's "No such option: ..."
        message = message[0].lower() + message[1:]
    ctx = getattr(exc, "ctx", None)
    hints = []
    if isinstance(exc, NoSuchOption) and ctx is not None:
        takes_text = any(p.param_type_name == "argument" for p in ctx.command.params)
        if takes_text:  # `kelm link -dog`: a text that starts with '-' reads as options
            hints.append("an argument that starts with '-' goes after `--`")
    if ctx is not None:
        hints.append(f"see `{ctx.command_path} --help`")
    return f"{message} ({'; '.join(hints)})" if hints else message


@contextlib.contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn Click's errors raised in the block into :func:`usage_line` on stderr and
    ``typer.Exit`` with Click's exit code (2 for usage errors); an interrupt into exit 130."""
    try:
        yield
    except NoArgsIsHelpError:  # `kelm`, `kelm graph`: the help was printed, as Click does
        raise
    except ClickException as exc:
        typer.echo(f"error: {usage_line(exc)}", err=True)
        raise typer.Exit(exc.exit_code) from None
    except typer.Abort:
        typer.echo("error: aborted", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None


class KelmGroup(TyperGroup):
    """The ``kelm`` root command: Typer's group, with Click's errors as one line."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
    ) -> Any:
        with one_line_errors():
            return super().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx: Any) -> Any:
        with one_line_errors():
            return super().invoke(ctx)


__all__ = ["KelmGroup", "one_line_errors", "usage_line"]
