"""The run: a new run or a resumed one, its loop, evaluation, checkpoints, stop signals.

``metrics.jsonl`` training rows (every ``log_every`` iterations) hold means over the interval:
the critic statistics over its ``log_every · critic_iters`` critic steps (``grad_norm`` over the
steps that measured it), ``gen_loss`` over its generator steps; and ``lr_scale``, the factor of
the base learning rates that the row's iteration trained at. Evaluation rows (every
``eval_every`` iterations, or every ``eval_minutes`` of wall-clock time, and at the end; ``time``
is when the evaluated weights were reached) hold the metrics of ``eval_samples`` argmax samples
(``textgan.training.evaluation``) with the real-vs-real floor at the same N, and ``ema_<key>`` of
the EMA generator's when EMA is on.
Diagnostics and checkpoints likewise follow iterations or, with ``diag_minutes`` and
``ckpt_minutes``, the wall clock. With ``fit_iters`` a new run first fits ``iters`` to
``max_minutes`` (``textgan.training.fit``); its clock starts with the fit.

All file output goes through ``RunOutput`` (``textgan.training.output``), silent on every process
but rank 0, which holds the run folder's one-writer lock from before its first write to the end.
One iteration itself is ``textgan.training.trainer.Trainer.step``. Under torchrun every rank runs
this loop; ``textgan.training.distributed`` makes them agree on when to stop (signal, time,
divergence) and rank 0 alone evaluates.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from textgan import files
from textgan.config import (
    RESUMABLE,
    SECTIONS,
    RunConfig,
    TrainConfig,
    with_train,
)
from textgan.corpus import PreparedCorpus
from textgan.devices import pick_device
from textgan.errors import UserError
from textgan.files import checkpoint as ckpt_io
from textgan.files import rundir
from textgan.files.rundir import RunDir
from textgan.nn.networks import count_parameters
from textgan.training import distributed
from textgan.training.evaluation import Schedule, evaluate, make_evaluator
from textgan.training.fit import fit_schedule
from textgan.training.meter import nonfinite
from textgan.training.output import RunOutput, StopFlag
from textgan.training.setup import check_corpus, load_vocab, prepare_corpus
from textgan.training.state import restore, trainer_state
from textgan.training.trainer import Trainer, lr_scale

# -- the run -----------------------------------------------------------------------------------


@dataclass
class TrainResult:
    """How a call to ``train`` ended."""

    run_dir: Path
    iteration: int
    elapsed: float
    checkpoint: Path | None
    last_eval: dict[str, Any] | None  # the latest evaluation row of metrics.jsonl
    stopped_by: int | None = None  # the signal that stopped it early, if any

    @property
    def exit_code(self) -> int:
        return 0 if self.stopped_by is None else 128 + self.stopped_by


Hook = Callable[[Trainer, int], None]


def _default_run_dir(config: RunConfig) -> Path:
    if config.train.run_dir:
        return Path(config.train.run_dir)
    if config.train.name:
        return Path("runs") / config.train.name
    source = config.corpus.corpus.rstrip("/\\")
    stem = Path(source.split(":", 1)[-1]).name or "corpus"
    stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in stem)
    base = Path("runs") / f"{stem}-{datetime.now():%Y%m%d-%H%M%S}"
    path, k = base, 2
    while path.exists():  # two runs started within the same second
        path, k = base.with_name(f"{base.name}-{k}"), k + 1
    return path


def _summary(config: RunConfig, trainer: Trainer, prepared: PreparedCorpus, run: Path) -> str:
    t = config.train
    world = f", {trainer.world} processes × {trainer.local_batch} rows" if trainer.world > 1 else ""
    return (
        f"textgan train: device {trainer.device}{world}, preset {t.preset}, "
        f"G {count_parameters(trainer.generator):,} / D {count_parameters(trainer.critic):,} "
        f"parameters, corpus {prepared.key}: {len(prepared.train):,} train / "
        f"{len(prepared.heldout):,} held-out sequences, vocab {len(prepared.vocab)}, "
        f"iterations {trainer.iteration:,} → {t.iters:,}, run {run}"
    )


def _config_lines(config: RunConfig) -> list[str]:
    lines = []
    for name in SECTIONS:
        values = asdict(getattr(config, name))
        lines.append(f"  {name}: " + " ".join(f"{k}={v}" for k, v in values.items()))
    return lines


def train(
    config: RunConfig,
    prepared: PreparedCorpus | None = None,
    *,
    progress: bool = True,
    hooks: Sequence[Hook] = (),
    loggers: Sequence[str] = (),
) -> TrainResult:
    """Start a new run of ``config`` in a new run directory and train it to ``train.iters``.

    ``hooks`` are called as ``hook(trainer, iteration)`` after every iteration (on every rank).
    ``loggers`` name where the rows go besides metrics.jsonl (``textgan.training.loggers``).
    """
    if prepared is None:
        prepared = prepare_corpus(config.corpus, progress)
    device = _device(config)
    check_corpus(config, prepared, None)
    trainer = Trainer(config, prepared.train, device)
    evaluator = make_evaluator(config, prepared, progress)
    run = RunDir(distributed.broadcast_object(_default_run_dir(config)))  # rank 0's time stamp
    config = replace(config, train=replace(config.train, run_dir=str(run.path)))
    output = RunOutput(run, progress, loggers)
    fit = None
    if config.train.fit_iters:
        fit = fit_schedule(config, prepared, evaluator, device, run.path.parent, output.echo)
    if fit is not None:
        config = trainer.config = fit.config
    with output.lock(new=True):
        output.config(config, prepared.vocab)
        if fit is not None:
            fit.save(output)
        started = None if fit is None else fit.started  # the run's clock includes the fit
        return _loop(config, prepared, trainer, evaluator, output, hooks, started=started)


def refuse_resume_changes(flags: Sequence[str]) -> None:
    """A resumed run keeps its saved config except the fields in ``RESUMABLE``."""
    if flags:
        allowed = ", ".join("--" + k.replace("_", "-") for k in RESUMABLE)
        raise UserError(
            f"{', '.join(flags)} cannot change when resuming: the run keeps its saved config "
            f"(only {allowed} may); start a new run to train another configuration"
        )


def resume(
    run_dir: str | Path,
    overrides: Mapping[str, Any] | None = None,
    *,
    progress: bool = True,
    hooks: Sequence[Hook] = (),
    loggers: Sequence[str] = (),
) -> TrainResult:
    """Continue a run from its newest checkpoint, with its saved config (``loggers`` as in
    ``train``).

    ``overrides`` may change only the fields in ``RESUMABLE`` (e.g. ``iters`` to extend a
    finished run); the model, data and optimizer stay as they were.
    """
    # Every rank opens the folder before any joins the job, so before rank 0 can write to it.
    run = RunDir.open(run_dir)
    config = RunConfig.load(run.config)
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    refuse_resume_changes(
        ["--" + k.replace("_", "-") for k in sorted(set(overrides) - set(RESUMABLE))]
    )
    _refuse_moving_the_decay(run, config.train, overrides.get("iters"))
    config = with_train(config, **overrides, run_dir=str(run.path))
    prepared = prepare_corpus(config.corpus, progress)
    device = _device(config)
    output = RunOutput(run, progress, loggers)
    # A live run keeps its files: nothing is rewritten or truncated unless this process is the
    # one writer and the folder takes writes.
    with output.lock():
        return _resume(run, output, prepared, config, device, hooks)


def _refuse_moving_the_decay(run: RunDir, train_config: TrainConfig, iters: int | None) -> None:
    """A linear schedule ends at the run's own --iters: another end would make the rate jump
    at the resumed iteration. A finished run is not extended at all: its last rate (1/iters of
    the base) trains next to nothing, and any other continuation (the rate back up, a second
    decay) is a recipe no run was measured with; a longer run is a new run."""
    if train_config.lr_decay != "linear":
        return
    done = int(rundir.CKPT_RE.match(run.latest_checkpoint().name).group(1))
    if done >= train_config.iters:
        raise UserError(
            f"run {run.path} is finished: its learning rate decayed linearly to 0 at iteration "
            f"{train_config.iters:,}, and a linear decay cannot be extended; train a new run "
            f"with a larger --iters (textgan train --config {run.config} --iters N)"
        )
    if iters not in (None, train_config.iters):
        raise UserError(
            f"--iters cannot change when resuming this run: its learning rate decays linearly "
            f"to 0 at iteration {train_config.iters:,}, and another end would make the rate "
            f"jump; start a new run with --iters {iters} (or train with --lr-decay constant)"
        )


def _device(config: RunConfig) -> torch.device:
    """This rank's device, after joining the job when torchrun started several processes."""
    device = pick_device(config.train.device)
    distributed.setup(device, config.train.dist_timeout)
    return distributed.local_device(device)


def _resume(
    run: RunDir,
    output: RunOutput,
    prepared: PreparedCorpus,
    config: RunConfig,
    device: torch.device,
    hooks: Sequence[Hook],
) -> TrainResult:
    progress = output.progress
    ckpt = ckpt_io.load_checkpoint(run.latest_checkpoint())
    if ckpt.iteration >= config.train.iters:
        raise UserError(
            f"run {run.path} is already at iteration {ckpt.iteration:,} of {config.train.iters:,}; "
            f"pass --iters N with N > {ckpt.iteration} to train it further"
        )
    run_vocab = load_vocab(run.vocab)
    if ckpt.vocab != run_vocab or ckpt.config.get("model") != asdict(config.model):
        raise UserError(
            f"checkpoint {ckpt.path} does not match its run's config.json/vocab.json; "
            "the run directory was edited: restore them"
        )
    check_corpus(config, prepared, run_vocab)
    trainer = Trainer(config, prepared.train, device)
    notice = restore(trainer, ckpt)
    if notice:
        output.echo(notice)
    evaluator = make_evaluator(config, prepared, progress)
    if output.active:
        files.truncate_rows(run.metrics, ckpt.iteration)
        files.truncate_rows(run.path / rundir.DIAGNOSTICS, ckpt.iteration)
        files.write_json(run.config, config.to_dict())
    return _loop(config, prepared, trainer, evaluator, output, hooks, last_ckpt=ckpt.path)


def _loop(
    config: RunConfig,
    prepared: PreparedCorpus,
    trainer: Trainer,
    evaluator: Any,
    output: RunOutput,
    hooks: Sequence[Hook],
    last_ckpt: Path | None = None,
    started: float | None = None,
) -> TrainResult:
    from tqdm.auto import tqdm

    from textgan.generation.sampling import samples_to_text

    t = config.train
    output.echo(_summary(config, trainer, prepared, output.run.path))
    output.open_loggers(trainer.iteration)
    for line in _config_lines(config):
        output.echo(line)
    meter = trainer.meter  # saved with each checkpoint: a resumed interval averages the same steps
    last_eval: dict[str, Any] | None = None
    base_elapsed = trainer.elapsed
    started = time.perf_counter() if started is None else started
    postfix: dict[str, str] = {}
    bar = tqdm(
        total=t.iters,
        initial=trainer.iteration,
        disable=not output.progress,
        unit="it",
        dynamic_ncols=True,
        file=sys.stderr,
    )

    def elapsed() -> float:
        return base_elapsed + time.perf_counter() - started

    def save() -> Path | None:
        means = meter.means()
        if nonfinite(means) or not trainer.params_finite():
            _diverged(trainer.iteration, means, last_ckpt)
        trainer.elapsed = elapsed()
        path = output.checkpoint(trainer, trainer_state(trainer), t.keep)  # every rank's state
        output.plots()
        return path

    due_eval, due_diag, due_ckpt = (Schedule(t, base_elapsed, w) for w in ("eval", "diag", "ckpt"))
    with StopFlag(output) as stop, bar:
        budget = math.inf if t.max_minutes is None else 60.0 * t.max_minutes
        out_of_time, stopped = False, None
        while trainer.iteration < t.iters and stopped is None and not out_of_time:
            trainer.step()
            k = trainer.iteration
            now = _agree_after_step(trainer, elapsed(), last_ckpt)
            out_of_time = now - base_elapsed >= budget
            last = k == t.iters or out_of_time
            if k % t.log_every == 0 or last:
                means = meter.means()
                if nonfinite(means):
                    _diverged(k, means, last_ckpt)
                scale = lr_scale(t.lr_decay, k - 1, t.iters)  # the rate iteration k trained at
                output.rows([{"iter": k, "time": round(now, 3), **means, "lr_scale": scale}])
                meter.reset()
                postfix["W"] = f"{means['wasserstein']:.3f}"
            if evaluator is not None and (due_eval(k, now) or last):
                # Stamped with the time the evaluated weights were reached, not its own end.
                scores, ids = evaluate(trainer, evaluator, config)
                last_eval = {"iter": k, "time": round(now, 3), **scores}
                output.rows([last_eval])
                output.samples(k, samples_to_text(ids, prepared.vocab))
                postfix["JS4"] = f"{last_eval.get('js4', float('nan')):.3f}"
            if due_diag(k, now) or last:
                output.diagnostics(trainer, k)
            bar.set_postfix(postfix, refresh=False)
            bar.update(1)
            for hook in hooks:
                hook(trainer, k)
            if due_ckpt(k, now) or last:
                last_ckpt = save() or last_ckpt
            # A signal reaches the ranks at different moments: they stop at the same iteration.
            stopped = stop.signal = distributed.agree_signal(stop.signal)
        saved = last_ckpt is not None and last_ckpt.name == ckpt_io.checkpoint_name(
            trainer.iteration
        )
        if stop.signal is not None and not saved:
            last_ckpt = save() or last_ckpt
    total = elapsed()
    result = TrainResult(
        output.run.path, trainer.iteration, total, last_ckpt, last_eval, stop.signal
    )
    output.echo(_end_line(result, config))
    return result


def _agree_after_step(trainer: Trainer, now: float, last_ckpt: Path | None) -> float:
    """The run's wall-clock time after this step, the latest rank's on every rank: a budget one
    rank has spent ends them all, and they checkpoint on a wall-clock grid together. With
    several ranks, weights that stopped being finite on any of them stop them all here (one
    rank alone never takes another step)."""
    if trainer.world == 1:
        return now
    latest, bad = distributed.agree_max([now, not trainer.params_finite()])
    if bad:
        _diverged(trainer.iteration, {}, last_ckpt)
    return latest


def _diverged(k: int, means: Mapping[str, float], last_ckpt: Path | None) -> None:
    bad = ", ".join(f"{key} = {means[key]}" for key in nonfinite(means)) or "weights not finite"
    kept = f"the last good checkpoint is {last_ckpt}" if last_ckpt else "no checkpoint was written"
    raise UserError(
        f"training diverged by iteration {k} ({bad}); {kept}; lower --lr or check the "
        "Lipschitz constraint"
    )


def _end_line(result: TrainResult, config: RunConfig) -> str:
    how = "stopped" if result.stopped_by is not None else "finished"
    text = (
        f"textgan train: {how} at iteration {result.iteration:,} of {config.train.iters:,} "
        f"after {result.elapsed:.1f} s; run {result.run_dir}"
    )
    if result.last_eval:
        e = result.last_eval
        text += (
            f"; JS-4 {e['js4']:.3f} at iteration {e['iter']:,} "
            f"(floor {e['floor_js4']:.3f} at N={e['n_samples']})"
        )
    if result.stopped_by is not None:
        text += f"; continue with: textgan train --resume {result.run_dir}"
    return text
