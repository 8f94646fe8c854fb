"""Run the ``textgan`` command from a checkout, without installing it: ``python cli.py --help``."""

from textgan.cli import main

if __name__ == "__main__":
    main()
