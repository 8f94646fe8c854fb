"""The ``textgan`` command line.

Each command parses its options and hands off to the module that does the work. The options of
``prepare`` and ``train`` are generated from the config fields (``textgan.cli.options``); heavy
imports (torch, datasets) happen inside the commands, so ``textgan --help`` answers at once. A
``UserError`` or a bad option is printed as one line and exits with status 2.
"""

from textgan.cli.base import main
from textgan.cli.demo import demo
from textgan.cli.hub import export, push
from textgan.cli.outputs import plot, sample, score
from textgan.cli.study import study, tune
from textgan.cli.training import prepare, train

__all__ = [
    "demo",
    "export",
    "main",
    "plot",
    "prepare",
    "push",
    "sample",
    "score",
    "study",
    "train",
    "tune",
]
