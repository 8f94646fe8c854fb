"""File-system facts shared by the modules that write caches and checkpoints."""

import os


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists: a temporary folder named after a live writer is
    still being written and must not be cleaned up."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True
