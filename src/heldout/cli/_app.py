"""The ``heldout`` application: its command groups, one module each, and the entry point.

``_plan`` (init, plan ...), ``_run`` (run, report), ``_history`` (history, compare),
``_catalog`` (metrics, suites, power, schema), ``_leak``, ``_demo``. Every command ends with
one of :data:`EXIT_CODES`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from heldout._version import __version__
from heldout.cli import _ab, _baseline, _catalog, _demo, _flywheel, _history, _leak, _plan, _run
from heldout.cli._console import INTERRUPTED, err, out
from heldout.errors import HeldoutError

__all__ = ["EXIT_CODES", "app", "main"]

app = typer.Typer(
    name="heldout",
    help="Decide, with evidence, whether a fine-tuned LLM is better than its base model.",
    epilog="Exit codes: 0 success; 1 a check or verdict says no; 2 bad input or "
    "configuration; 3 internal error (crash log); 4 hold (ab analyze: wait for more units); "
    "130 interrupted (rerun resumes).",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)
app.add_typer(_plan.plan_app, name="plan")
app.command()(_plan.init)
app.command()(_baseline.baseline)
app.add_typer(_flywheel.flywheel_app, name="flywheel")
app.add_typer(_ab.ab_app, name="ab")
app.command("run")(_run.run_cmd)
app.command()(_run.report)
app.command()(_history.history)
app.command("compare")(_history.compare_cmd)
app.command("metrics")(_catalog.list_metrics)
app.command("suites")(_catalog.list_suites)
app.command()(_catalog.power)
app.command()(_catalog.schema)
app.command()(_leak.leak)
app.command()(_demo.demo)


def _version(value: bool) -> None:
    if value:
        out.print(f"heldout {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """heldout: pre-registered, paired, honest evaluation of fine-tuned LLMs."""


EXIT_CODES = """Exit codes, the same for every command:
  0  success (a ship verdict, a passing check)
  1  a check or verdict says no (the last line names which)
  2  bad input or configuration (the message names the file, line or field)
  3  internal error: a bug in heldout (one line, and the path of a crash log)
  4  hold: 'heldout ab analyze' needs more units before it can decide
  130 interrupted (finished work is kept: rerun to resume)"""


def _crash_log(exc: BaseException) -> Path:
    """Write the traceback where the user can find it and attach it to a bug report."""
    import tempfile
    import traceback
    from datetime import UTC, datetime

    from heldout._redact import redact

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    text = redact("".join(traceback.format_exception(exc)))
    for folder in (Path(".heldout"), Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"crash-{stamp}-{os.getpid()}.log"
            path.write_text(f"heldout {__version__}\n{' '.join(sys.argv)}\n\n{text}", "utf-8")
            return path.resolve()
        except OSError:
            continue
    return Path("(crash log could not be written)")


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: every command ends with one of :data:`EXIT_CODES`."""
    try:
        code = app(
            args=list(argv) if argv is not None else None,
            prog_name="heldout",
            standalone_mode=False,
        )
    except typer.Exit as exc:
        code = exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        code = 130
    except typer.TyperException as exc:  # usage errors: unknown options, commands, values
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            err.print(f"error: {exc}", highlight=False, markup=False)
        err.print("see 'heldout --help' and 'heldout COMMAND --help' for what each takes")
        sys.exit(2)
    except HeldoutError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except OSError as exc:  # a path the user gave cannot be read or written
        where = f" {exc.filename}" if exc.filename else ""
        err.print(
            f"[bold red]error:[/] cannot use{where}: {exc.strerror or exc}; check the path "
            "and its permissions",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(2)
    except Exception as exc:
        path = _crash_log(exc)
        err.print(
            f"[bold red]internal error (a bug in heldout):[/] {type(exc).__name__}: "
            f"{str(exc)[:200]}; the traceback is in {path} (please attach it to a bug report)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(3)
    if code == 130:  # typer turns Ctrl-C into exit code 130 without a word
        err.print(f"interrupted{INTERRUPTED[0]}; finished work is kept: rerun to resume")
    sys.exit(code if isinstance(code, int) else 0)
