"""What a run writes and how it stops: ``RunOutput`` (every file and line, rank 0 only, under
the run's one-writer lock; ``textgan.training.distributed`` says which rank this is) and
``StopFlag`` (Ctrl-C / SIGTERM to a clean stop)."""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textgan import files
from textgan.config import RunConfig
from textgan.files import checkpoint as ckpt_io
from textgan.files.rundir import RunDir
from textgan.training import distributed
from textgan.training.trainer import Trainer
from textgan.vocab import Vocab

if TYPE_CHECKING:
    from textgan.training.loggers import Logger


class RunOutput:
    """Every file and line a run writes. Other ranks of a distributed run stay silent."""

    def __init__(self, run: RunDir, progress: bool, loggers: Sequence[str] = ()) -> None:
        self.run = run
        self.active = distributed.is_rank0()
        self.progress = progress and self.active
        self.logger_names = tuple(loggers)  # textgan.training.loggers, opened by open_loggers
        self.loggers: list[Logger] = []

    def lock(self, new: bool = False) -> contextlib.AbstractContextManager:
        """The run's one-writer lock on rank 0 (the other ranks never write), then a check that
        the folder takes writes: both before the first byte of the run is written. ``new``
        claims a new run folder (``RunDir.claim``) instead of locking an existing one. When
        rank 0 refuses, every rank ends with its error. The loggers close with the lock."""
        stack = distributed.rank0_decides(lambda: self._hold(new))
        return stack if stack is not None else contextlib.nullcontext()

    def _hold(self, new: bool) -> contextlib.ExitStack:
        lock = self.run.claim() if new else self.run.lock()
        try:
            for folder in (self.run.path, self.run.checkpoints, self.run.samples):
                files.probe_write(folder)
        except OSError as err:
            lock.release()
            raise files.disk_error(err.filename or self.run.path, err) from None
        stack = contextlib.ExitStack()
        stack.enter_context(lock)
        stack.callback(self._close_loggers)  # first: their last events before the unlock
        return stack

    def open_loggers(self, start: int) -> None:
        """Start the loggers named at construction, continuing the run from iteration ``start``
        (a resumed run's curves go on without a duplicated step)."""
        if self.active and self.logger_names:
            from textgan.training.loggers import open_loggers

            self.loggers = open_loggers(self.logger_names, self.run.path, start)

    def _close_loggers(self) -> None:
        for logger in self.loggers:
            logger.close()
        self.loggers = []

    def echo(self, text: str) -> None:
        if self.active:
            from tqdm.auto import tqdm

            tqdm.write(text, file=sys.stderr)

    def rows(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if self.active:
            files.append_rows(self.run.metrics, rows)
            for logger in self.loggers:
                logger.log_rows(rows)

    def samples(self, iteration: int, lines: list[str]) -> None:
        """``samples/iter_<k>.txt``: one sample per line (the EMA generator's when EMA is on)."""
        if self.active:
            path = self.run.samples / f"iter_{iteration}.txt"
            text = "".join(line + "\n" for line in lines)
            files.atomic_write_text(path, text)
            for logger in self.loggers:
                logger.log_text(iteration, text)

    def diagnostics(self, trainer: Trainer, iteration: int) -> None:
        if self.active:
            from textgan.training.diagnostics import append_diagnostics, diagnose_trainer

            append_diagnostics(self.run.path, diagnose_trainer(trainer, iteration))

    def plots(self) -> None:
        if self.active:
            from textgan.plots import write_run_plots

            write_run_plots(self.run.path)  # warns, never raises

    def config(self, config: RunConfig, vocab: Vocab) -> None:
        if self.active:
            files.write_json(self.run.config, config.to_dict())
            files.atomic_write_text(self.run.vocab, vocab.dumps())

    def checkpoint(self, trainer: Trainer, state: Mapping[str, Any], keep: int) -> Path | None:
        """Save the weights and ``state`` (``state.trainer_state(trainer)``, which every rank
        computes: with several ranks it gathers their random streams)."""
        if not self.active:
            return None
        weights = {
            "generator": trainer.generator.state_dict(),
            "critic": trainer.critic.state_dict(),
        }  # the EMA weights travel in trainer_state(trainer) (checkpoint.EMA_KEY)
        return ckpt_io.save_checkpoint(self.run, trainer.iteration, weights, state, keep)


# -- stopping on a signal ----------------------------------------------------------------------


class StopFlag:
    """Turns the first Ctrl-C / SIGTERM into a request to stop at the next iteration boundary;
    a second Ctrl-C aborts at once (checkpoints are atomic, so nothing is left half-written)."""

    def __init__(self, output: RunOutput) -> None:
        self.output = output
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: object) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signum
        name = signal.Signals(signum).name
        self.output.echo(f"{name}: stopping after this iteration and saving a checkpoint")
