"""The ``textgan`` command group: every user mistake on one line, exit status 2."""

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
            fail(str(err))
        except click.UsageError as err:
            hint = f" (see '{err.ctx.command_path} --help')" if err.ctx else ""
            fail(f"{err.format_message()}{hint}")
        except click.ClickException as err:
            fail(err.format_message(), err.exit_code)
        except (click.Abort, KeyboardInterrupt):
            click.echo("textgan: interrupted", err=True)
            sys.exit(130)
        sys.exit(result if isinstance(result, int) else 0)


def fail(message: str, code: int = 2) -> None:
    """Print ``message`` as textgan's one error line and exit."""
    click.echo(f"textgan: error: {message}", err=True)
    sys.exit(code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="textgan")
def main() -> None:
    """Character-level text GANs: prepare a corpus, train, sample, score."""
