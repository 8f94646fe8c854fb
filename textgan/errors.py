"""The one exception type for mistakes a user can make and fix."""


class UserError(Exception):
    """A problem caused by the user's input; the CLI prints it on one line and exits 2.

    The message names what is wrong and how to fix it. Bugs raise anything else and keep their
    traceback.
    """
