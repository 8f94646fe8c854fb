"""The ``textgan`` command line.

Each command parses its options and hands off to the module that does the work; heavy imports
(torch, datasets) happen inside the commands so ``textgan --help`` answers at once. A
``UserError`` or a bad option is printed as one line and exits with status 2.
"""

from __future__ import annotations

import sys

import click

from textgan.errors import UserError


class _Group(click.Group):
    """A click group that reports user mistakes on one line, exit status 2, no traceback."""

    def main(self, args=None, prog_name=None, **extra):
        extra.pop("standalone_mode", None)
        try:
            result = super().main(args, prog_name or "textgan", standalone_mode=False, **extra)
        except UserError as err:
            _fail(str(err))
        except click.UsageError as err:
            hint = f" (see '{err.ctx.command_path} --help')" if err.ctx else ""
            _fail(f"{err.format_message()}{hint}")
        except click.ClickException as err:
            _fail(err.format_message(), err.exit_code)
        except (click.Abort, KeyboardInterrupt):
            click.echo("textgan: interrupted", err=True)
            sys.exit(130)
        sys.exit(result if isinstance(result, int) else 0)


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"textgan: error: {message}", err=True)
    sys.exit(code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="textgan")
def main() -> None:
    """Character-level text GANs: prepare a corpus, train, sample, score."""


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option(
    "--out",
    type=click.Path(),
    default=None,
    help="Folder for the PNGs. Default: RUN_DIR/plots for one run, ./plots for several.",
)
def plot(run_dirs: tuple[str, ...], out: str | None) -> None:
    """Draw PNG figures of one or more runs (several runs overlaid, named by constraint).

    W estimate and losses against iterations and wall-clock time, JS-1..4 with their floors,
    and, where the run logged diagnostics, the critic weight histogram, per-layer gradient norms
    and input-gradient norms.
    """
    from textgan.plots import plot_runs

    for path in plot_runs(run_dirs, out):
        click.echo(path)
