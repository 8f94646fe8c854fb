"""The one exception type for mistakes a user can make and fix."""


class UserError(Exception):
    """A problem caused by the user's input; the CLI prints it on one line and exits 2.

    The message names what is wrong and how to fix it. Bugs raise anything else and keep their
    traceback.
    """


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none), for quoting
    a library's error inside a one-line ``UserError``."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__
