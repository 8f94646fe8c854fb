"""``python -m textgan``: the ``textgan`` command."""

from textgan.cli import main

if __name__ == "__main__":
    main()
