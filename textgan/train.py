"""The WGAN-GP training loop: config, presets, one iteration, logging, evaluation, checkpoints.

One generator iteration is ``critic_iters`` critic steps followed by one generator step, all with
Adam (the paper: lr 1e-4, β = (0.5, 0.9), 10 critic steps, batch 64, 200,000 iterations). Each
critic step draws a real batch from the memory-mapped training ids with the run's data RNG,
one-hot encodes it on the device and scores it against a detached generator batch; the generator
step runs with the critic's parameters frozen so no critic gradients are computed.

Randomness flows from ``TrainConfig.seed``: the torch global RNG initializes the networks, then
three independent streams (``numpy.random.SeedSequence(seed).spawn``) draw real-batch indices,
generator noise and the penalty's ε. Every one of them is saved with each checkpoint, so a run
stopped at iteration k and resumed reproduces, on the CPU, the uninterrupted run bit for bit.

``metrics.jsonl`` training rows (every ``log_every`` iterations) hold means over the interval:
the critic statistics over its ``log_every · critic_iters`` critic steps, ``gen_loss`` over its
generator steps. Evaluation rows (every ``eval_every`` iterations and at the end) hold JS-1..4
of ``eval_samples`` argmax samples with the real-vs-real floor at the same N.

All file output goes through ``_RunOutput``, which is silent on every process but rank 0, so
the loop can later run under ``torchrun``.
"""

from __future__ import annotations

import math
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from textgan import checkpoint as ckpt_io
from textgan import fast, rundir
from textgan.checkpoint import Checkpoint
from textgan.corpus import CorpusConfig, PreparedCorpus, prepare
from textgan.errors import UserError, first_line
from textgan.lipschitz import (
    LipschitzConfig,
    after_critic_step,
    apply_constraint,
    check_critic_norm,
)
from textgan.models import Critic, Generator, ModelConfig, count_parameters, one_hot
from textgan.rundir import RunDir
from textgan.vocab import Vocab


@dataclass(frozen=True)
class TrainConfig:
    """How to train: optimizer, schedule, logging, evaluation, checkpoints, where the run goes.

    The defaults are the paper's (preset ``paper``).
    """

    preset: str = "paper"
    iters: int = 200_000
    batch_size: int = 64
    critic_iters: int = 10
    lr: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.9
    seed: int = 0
    device: str = "auto"
    log_every: int = 10
    eval_every: int = 100
    eval_samples: int = 640
    diag_every: int = 100  # critic diagnostics (textgan/diagnostics.py) → diagnostics.jsonl
    ckpt_every: int = 1000
    keep: int = 3
    max_minutes: float | None = None  # wall-clock budget of this call; ends like the last iter
    precision: str = "auto"  # fp32 | tf32 | bf16 | auto (textgan.fast)
    compile: bool = False  # torch.compile the step, falling back to eager if it cannot
    name: str | None = None
    run_dir: str | None = None

    def validate(self) -> None:
        """UserError for values that cannot train."""
        if self.preset not in PRESETS:
            raise UserError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        for name, flag in (
            ("iters", "--iters"),
            ("batch_size", "--batch-size"),
            ("critic_iters", "--critic-iters"),
            ("log_every", "--log-every"),
            ("eval_every", "--eval-every"),
            ("eval_samples", "--eval-samples"),
            ("diag_every", "--diag-every"),
            ("ckpt_every", "--ckpt-every"),
            ("keep", "--keep"),
        ):
            if getattr(self, name) < 1:
                raise UserError(f"{flag} must be at least 1, got {getattr(self, name)}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise UserError(f"--lr must be a positive number, got {self.lr}")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise UserError(f"--{name} must lie in [0, 1), got {getattr(self, name)}")
        if self.max_minutes is not None and not (
            math.isfinite(self.max_minutes) and self.max_minutes > 0
        ):
            raise UserError(f"--max-minutes must be a positive number, got {self.max_minutes}")
        if self.seed < 0:
            raise UserError(f"--seed must be 0 or more, got {self.seed}")
        if self.precision not in fast.PRECISIONS:
            choices = ", ".join(fast.PRECISIONS)
            raise UserError(f"unknown --precision {self.precision!r}; choose one of {choices}")
        if self.device != "auto":
            _parse_device(self.device)


# Values that differ from the dataclass defaults, per config section.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # Gulrajani et al. 2017: D = 512, 5 blocks, batch 64, 10 critic steps, 200,000 iterations.
    "paper": {"model": {"dim": 512, "blocks": 5}, "train": {}},
    # A CPU model that learns visibly within an hour on two cores: about 0.19 s per iteration
    # there, and on the Billion Word shards JS-4 of its samples falls from 1.00 to 0.82 in its
    # first 720 iterations (0.89 with the paper's lr 1e-4), JS-1 from 0.53 to 0.11.
    "small": {
        "model": {"dim": 128, "blocks": 2},
        "train": {"iters": 15_000, "critic_iters": 5, "lr": 3e-4},
    },
    # Seconds: smoke tests and the README's quick start.
    "tiny": {
        "model": {"dim": 32, "blocks": 1},
        "train": {
            "iters": 400,
            "batch_size": 32,
            "critic_iters": 5,
            "lr": 1e-3,
            "log_every": 10,
            "eval_every": 100,
            "ckpt_every": 200,
        },
    },
}

SECTIONS: dict[str, type] = {
    "corpus": CorpusConfig,
    "model": ModelConfig,
    "lipschitz": LipschitzConfig,
    "train": TrainConfig,
}
# Derived from the prepared corpus, never set by hand.
_DERIVED = {"model": ("vocab_size", "seq_len")}
# What ``--resume`` may change: where and how the run continues, never what it trains.
RESUMABLE = (
    "iters",
    "max_minutes",
    "device",
    "log_every",
    "eval_every",
    "diag_every",
    "ckpt_every",
    "keep",
    "precision",
    "compile",
)


@dataclass(frozen=True)
class RunConfig:
    """Everything a run depends on; saved as ``config.json`` in the run directory."""

    corpus: CorpusConfig
    model: ModelConfig
    lipschitz: LipschitzConfig
    train: TrainConfig
    fingerprint: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: asdict(getattr(self, name)) for name in SECTIONS}
        out["fingerprint"] = self.fingerprint
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "config") -> RunConfig:
        if not isinstance(data, Mapping) or set(SECTIONS) - set(data):
            raise UserError(
                f"{source} is not a textgan run config (sections {', '.join(SECTIONS)})"
            )
        _check_fields(data, source, allow_derived=True)
        parts = {name: _build(kind, data[name], source) for name, kind in SECTIONS.items()}
        return cls(**parts, fingerprint=str(data.get("fingerprint", "")))


def _check_fields(data: Mapping[str, Any], source: str, allow_derived: bool = False) -> None:
    for section, values in data.items():
        if section == "fingerprint":
            continue
        if section not in SECTIONS:
            raise UserError(
                f"{source}: unknown section {section!r}; expected {', '.join(SECTIONS)}"
            )
        if not isinstance(values, Mapping):
            raise UserError(f"{source}: section {section!r} must be a JSON object")
        known = {f.name for f in fields(SECTIONS[section])}
        for key, value in values.items():
            if key not in known:
                raise UserError(
                    f"{source}: unknown field {section}.{key}; known: {', '.join(sorted(known))}"
                )
            if not allow_derived and key in _DERIVED.get(section, ()):
                raise UserError(f"{source}: {section}.{key} follows from the corpus; remove it")
            _check_type(SECTIONS[section], key, value, f"{source}: {section}.{key}")


def _check_type(kind: type, key: str, value: Any, where: str) -> None:
    """Catch a string where a number belongs (JSON files are typed by hand)."""
    default = _default(kind, key)
    if default is None or default is MISSING:
        return
    if isinstance(default, bool) or isinstance(value, bool):
        ok = isinstance(value, bool) == isinstance(default, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float))
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise UserError(f"{where} must be a {type(default).__name__}, got {value!r}")


def _build(kind: type, values: Mapping[str, Any], source: str) -> Any:
    try:
        floats = {k: float(v) for k, v in values.items() if isinstance(_default(kind, k), float)}
        return kind(**{**values, **floats})
    except (TypeError, ValueError) as err:
        raise UserError(f"{source}: invalid {kind.__name__} ({err})") from None


def _default(kind: type, key: str) -> Any:
    return next((f.default for f in fields(kind) if f.name == key), MISSING)


def read_config_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """The sections of a ``--config`` JSON file: any subset of a ``config.json``'s fields.

    A run's own ``config.json`` is accepted as a template: its corpus-derived fields
    (``fingerprint``, ``model.vocab_size``, ``model.seq_len``) are dropped, and so are the
    old run's ``train.name`` and ``train.run_dir`` (the new run gets its own directory).
    """
    path = Path(path)
    data = rundir.read_json(path, "config file")
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a JSON object of sections")
    dropped = dict(_DERIVED)
    if data.pop("fingerprint", None) is not None:
        dropped["train"] = ("name", "run_dir")
    for section, keys in dropped.items():
        for key in keys:
            if isinstance(data.get(section), dict):
                data[section].pop(key, None)
    _check_fields(data, f"config file {path}")
    return data


def layered_config(
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Field values per section: preset < ``config_file`` < ``overrides`` (explicit flags).

    The preset is ``preset`` if given, else the file's ``train.preset``, else ``paper``.
    """
    file_layer = read_config_file(config_file) if config_file else {}
    overrides = {k: dict(v) for k, v in (overrides or {}).items()}
    _check_fields(overrides, "options")
    name = preset or file_layer.get("train", {}).get("preset") or "paper"
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    merged: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
    for layer in (PRESETS[name], file_layer, overrides):
        for section, values in layer.items():
            merged[section].update(values)
    merged["train"]["preset"] = name
    return merged


def resolve_run_config(
    layers: Mapping[str, Mapping[str, Any]], progress: bool = True
) -> tuple[RunConfig, PreparedCorpus]:
    """Validate the options, prepare the corpus (or open its cache) and fill in the sizes that
    follow from it."""
    train_cfg = _build(TrainConfig, layers["train"], "options")
    train_cfg.validate()
    lip_cfg = _build(LipschitzConfig, layers["lipschitz"], "options")
    check_critic_norm(layers["model"].get("critic_norm", "none"), lip_cfg)
    corpus_cfg = _build(CorpusConfig, layers["corpus"], "options")
    prepared = prepare(corpus_cfg, progress=progress)
    # The floor needs as many real held-out lines as samples: a small corpus evaluates fewer.
    if len(prepared.heldout) < train_cfg.eval_samples:
        train_cfg = replace(train_cfg, eval_samples=max(1, len(prepared.heldout)))
    model_values = {"vocab_size": len(prepared.vocab), "seq_len": prepared.seq_len}
    model_cfg = _build(ModelConfig, {**layers["model"], **model_values}, "options")
    config = RunConfig(corpus_cfg, model_cfg, lip_cfg, train_cfg, prepared.fingerprint)
    return config, prepared


def _parse_device(name: str) -> torch.device:
    """``name`` as a device of a kind textgan runs on; UserError for anything else."""
    try:
        device = torch.device(name)
    except RuntimeError:  # not a device string at all, e.g. "tpu" or "cuda:x"
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise UserError(f"unknown device {name!r}; use auto, cpu, cuda[:N] or mps")
    return device


def pick_device(name: str) -> torch.device:
    """``auto``: CUDA, then MPS, then the CPU. An explicit device must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = _parse_device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(
                "--device cuda: PyTorch sees no CUDA GPU here; use --device auto or cpu"
            )
        count = torch.cuda.device_count()
        if (device.index or 0) >= count:
            raise UserError(
                f"--device {name}: PyTorch sees {count} CUDA GPU(s) here, cuda:0 to "
                f"cuda:{count - 1}; pick one of them or use --device auto"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError("--device mps: the MPS backend is not available; use --device auto or cpu")
    return device


# -- one run's networks, optimizers and random streams ----------------------------------------


def _seed_int(seq: np.random.SeedSequence) -> int:
    return int(seq.generate_state(1, np.uint64)[0] >> 1)


class Trainer:
    """The networks, optimizers and random streams of one run, and one training iteration."""

    def __init__(self, config: RunConfig, train_ids: np.ndarray, device: torch.device) -> None:
        t, m = config.train, config.model
        self.config = config
        self.device = device
        self.train_ids = train_ids
        torch.manual_seed(t.seed)
        self.generator = Generator(m).to(device)
        self.critic = apply_constraint(Critic(m).to(device), config.lipschitz)
        betas = (t.beta1, t.beta2)
        self.opt_g = fast.adam(self.generator.parameters(), t.lr, betas, device)
        self.opt_d = fast.adam(self.critic.parameters(), t.lr, betas, device)
        self.fast = fast.FastPath(
            self.generator, self.critic, config.lipschitz, device, t.precision, t.compile
        )
        data_seq, noise_seq, eps_seq = np.random.SeedSequence(t.seed).spawn(3)
        self.data_rng = np.random.default_rng(data_seq)
        self.noise_rng = torch.Generator(device).manual_seed(_seed_int(noise_seq))
        self.eps_rng = torch.Generator(device).manual_seed(_seed_int(eps_seq))
        self.iteration = 0
        self.elapsed = 0.0

    def real_batch(self) -> torch.Tensor:
        """A one-hot ``(B, V, L)`` batch of training rows drawn with replacement."""
        rows = self.data_rng.integers(0, len(self.train_ids), size=self.config.train.batch_size)
        ids = torch.from_numpy(np.asarray(self.train_ids[rows], dtype=np.int64))
        if self.device.type == "cuda":
            ids = ids.pin_memory()  # a copy from pinned memory does not stall the GPU queue
        return one_hot(ids.to(self.device, non_blocking=True), self.config.model.vocab_size)

    def fake_batch(self) -> torch.Tensor:
        z = self.generator.sample_noise(
            self.config.train.batch_size, self.device, generator=self.noise_rng
        )
        return self.fast.generate(z)

    def critic_step(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        real = self.real_batch()
        with torch.no_grad():
            fake = self.fake_batch()
        loss, stats = self.fast.critic_loss(real, fake, rng=self.eps_rng)
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        after_critic_step(self.critic, self.config.lipschitz)
        return loss.detach(), stats

    def generator_step(self) -> torch.Tensor:
        self.critic.requires_grad_(False)
        try:
            loss = self.fast.generator_loss(self.fake_batch())
            self.opt_g.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_g.step()
        finally:
            self.critic.requires_grad_(True)
        return loss.detach()

    def step(self, meter: _Meter) -> None:
        """One generator iteration: ``critic_iters`` critic steps, then one generator step."""
        for _ in range(self.config.train.critic_iters):
            loss, stats = self.critic_step()
            meter.add("critic", {"critic_loss": loss, **stats})
        meter.add("gen", {"gen_loss": self.generator_step()})
        self.iteration += 1

    def params_finite(self) -> bool:
        tensors = [*self.generator.parameters(), *self.critic.parameters()]
        return bool(torch.stack([p.detach().isfinite().all() for p in tensors]).all())

    # -- checkpoint state ----------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything but the weights, in types ``torch.load(weights_only=True)`` reads."""
        rng: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "data": self.data_rng.bit_generator.state,
            "noise": self.noise_rng.get_state(),
            "eps": self.eps_rng.get_state(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "format": ckpt_io.FORMAT_VERSION,  # what load_state accepts
            "iteration": self.iteration,
            "elapsed": self.elapsed,
            "optimizer_g": self.opt_g.state_dict(),
            "optimizer_d": self.opt_d.state_dict(),
            "rng": rng,
        }

    def load(self, ckpt: Checkpoint) -> None:
        """Restore weights, optimizers, counters and every RNG stream from a checkpoint."""
        try:
            rng = ckpt.state["rng"]
            size = self.noise_rng.get_state().numel()
            if any(torch.is_tensor(rng[k]) and rng[k].numel() != size for k in ("noise", "eps")):
                # A CPU generator's state is Mersenne Twister, a CUDA one's a Philox seed and
                # offset: neither continues as the other, so the run cannot resume exactly here.
                raise UserError(
                    f"checkpoint {ckpt.path} was written on another kind of device than "
                    f"{self.device.type}: its noise and ε streams cannot continue here; resume "
                    "it with the --device it was trained with"
                )
            self.generator.load_state_dict(ckpt.generator)
            self.critic.load_state_dict(ckpt.critic)
            state = ckpt.state
            self.opt_g.load_state_dict(state["optimizer_g"])
            self.opt_d.load_state_dict(state["optimizer_d"])
            fast.match_optimizer_layout(self.opt_g, self.opt_d)
            torch.set_rng_state(rng["torch"])
            self.data_rng.bit_generator.state = rng["data"]
            self.noise_rng.set_state(rng["noise"])
            self.eps_rng.set_state(rng["eps"])
            cuda = rng.get("cuda")
            if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(cuda)
            self.iteration = int(state["iteration"])
            self.elapsed = float(state["elapsed"])
        except (KeyError, RuntimeError, ValueError, TypeError) as err:
            raise UserError(
                f"checkpoint {ckpt.path} does not fit this run's model ({first_line(err)}); "
                "it belongs to another configuration"
            ) from None
        if self.iteration != ckpt.iteration:
            raise UserError(f"checkpoint {ckpt.path}: its state says iteration {self.iteration}")


class _Meter:
    """Sums of detached statistics on the device (no synchronization per step)."""

    def __init__(self) -> None:
        self.sums: dict[str, dict[str, torch.Tensor]] = {}
        self.counts: dict[str, int] = {}

    def add(self, group: str, stats: Mapping[str, torch.Tensor]) -> None:
        sums = self.sums.setdefault(group, {})
        for key, value in stats.items():
            value = value.detach().float()
            sums[key] = sums[key] + value if key in sums else value.clone()
        self.counts[group] = self.counts.get(group, 0) + 1

    def means(self) -> dict[str, float]:
        out = {}
        for group, sums in self.sums.items():
            if sums:
                values = torch.stack(list(sums.values())).cpu() / self.counts[group]
                out.update(zip(sums, values.tolist(), strict=True))
        return out

    def reset(self) -> None:
        self.sums.clear()
        self.counts.clear()


_LOSS_KEYS = ("critic_loss", "gen_loss", "wasserstein", "gp")


def _nonfinite(means: Mapping[str, float]) -> list[str]:
    return [k for k in _LOSS_KEYS if k in means and not math.isfinite(means[k])]


# -- output (rank 0 only) ----------------------------------------------------------------------


def _is_rank0() -> bool:
    dist = torch.distributed
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


class _RunOutput:
    """Every file and line a run writes. Other ranks of a distributed run stay silent."""

    def __init__(self, run: RunDir, progress: bool) -> None:
        self.run = run
        self.active = _is_rank0()
        self.progress = progress and self.active

    def echo(self, text: str) -> None:
        if self.active:
            from tqdm.auto import tqdm

            tqdm.write(text, file=sys.stderr)

    def rows(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if self.active:
            rundir.append_rows(self.run.metrics, rows)

    def samples(self, iteration: int, lines: list[str]) -> None:
        if self.active:
            path = self.run.samples / f"iter_{iteration}.txt"
            rundir.atomic_write_text(path, "".join(line + "\n" for line in lines))

    def diagnostics(self, trainer: Trainer, iteration: int) -> None:
        if self.active:
            from textgan.diagnostics import append_diagnostics, diagnose_trainer

            append_diagnostics(self.run.path, diagnose_trainer(trainer, iteration))

    def plots(self) -> None:
        if self.active:
            from textgan.plots import write_run_plots

            write_run_plots(self.run.path)  # warns, never raises

    def config(self, config: RunConfig, vocab: Vocab) -> None:
        if self.active:
            rundir.write_json(self.run.config, config.to_dict())
            vocab.save(self.run.vocab)

    def checkpoint(self, trainer: Trainer, keep: int) -> Path | None:
        if not self.active:
            return None
        weights = {
            "generator": trainer.generator.state_dict(),
            "critic": trainer.critic.state_dict(),
        }
        return ckpt_io.save_checkpoint(
            self.run, trainer.iteration, weights, trainer.state_dict(), keep
        )


# -- stopping on a signal ----------------------------------------------------------------------


class _StopFlag:
    """Turns the first Ctrl-C / SIGTERM into a request to stop at the next iteration boundary;
    a second Ctrl-C aborts at once (checkpoints are atomic, so nothing is left half-written)."""

    def __init__(self, output: _RunOutput) -> None:
        self.output = output
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
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
    return (
        f"textgan train: device {trainer.device}, preset {t.preset}, "
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
) -> TrainResult:
    """Start a new run of ``config`` in a new run directory and train it to ``train.iters``.

    ``hooks`` are called as ``hook(trainer, iteration)`` after every iteration (on every rank).
    """
    prepared = prepared or prepare(config.corpus, progress=progress)
    _check_corpus(config, prepared, None)
    trainer = Trainer(config, prepared.train, pick_device(config.train.device))
    evaluator = _evaluator(config, prepared, progress)
    # Under torchrun, pass --name or --run-dir so that every rank agrees on the directory.
    path = _default_run_dir(config)
    run = RunDir.create(path) if _is_rank0() else RunDir(path)
    config = replace(config, train=replace(config.train, run_dir=str(run.path)))
    output = _RunOutput(run, progress)
    output.config(config, prepared.vocab)
    return _loop(config, prepared, trainer, evaluator, output, hooks)


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
) -> TrainResult:
    """Continue a run from its newest checkpoint, with its saved config.

    ``overrides`` may change only the fields in ``RESUMABLE`` (e.g. ``iters`` to extend a
    finished run); the model, data and optimizer stay as they were.
    """
    run = RunDir.open(run_dir)
    config = RunConfig.from_dict(rundir.read_json(run.config, "run config"), str(run.config))
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    refuse_resume_changes(
        ["--" + k.replace("_", "-") for k in sorted(set(overrides) - set(RESUMABLE))]
    )
    config = replace(config, train=replace(config.train, **overrides, run_dir=str(run.path)))
    config.train.validate()
    ckpt = ckpt_io.load_checkpoint(run.latest_checkpoint())
    if ckpt.iteration >= config.train.iters:
        raise UserError(
            f"run {run.path} is already at iteration {ckpt.iteration:,} of {config.train.iters:,}; "
            f"pass --iters N with N > {ckpt.iteration} to train it further"
        )
    run_vocab = _load_vocab(run.vocab)
    if ckpt.vocab != run_vocab or ckpt.config.get("model") != asdict(config.model):
        raise UserError(
            f"checkpoint {ckpt.path} does not match its run's config.json/vocab.json; "
            "the run directory was edited: restore them"
        )
    prepared = prepare(config.corpus, progress=progress)
    _check_corpus(config, prepared, run_vocab)
    trainer = Trainer(config, prepared.train, pick_device(config.train.device))
    trainer.load(ckpt)
    evaluator = _evaluator(config, prepared, progress)
    output = _RunOutput(run, progress)
    if output.active:
        rundir.truncate_rows(run.metrics, ckpt.iteration)
        rundir.truncate_rows(run.path / rundir.DIAGNOSTICS, ckpt.iteration)
        rundir.write_json(run.config, config.to_dict())
    return _loop(config, prepared, trainer, evaluator, output, hooks, last_ckpt=ckpt.path)


def _load_vocab(path: Path) -> Vocab:
    try:
        return Vocab.load(path)
    except FileNotFoundError:
        raise UserError(f"the run's vocabulary {path} is missing; restore it") from None
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"the run's vocabulary {path} is invalid ({err})") from None


def _check_corpus(config: RunConfig, prepared: PreparedCorpus, vocab: Vocab | None) -> None:
    """The prepared data must be the data the model was built for."""
    what = f"corpus {config.corpus.corpus!r} (cache {prepared.path})"
    if len(prepared.vocab) != config.model.vocab_size or prepared.seq_len != config.model.seq_len:
        raise UserError(
            f"{what} does not fit the model: vocabulary {len(prepared.vocab)} and sequence length "
            f"{prepared.seq_len} there, {config.model.vocab_size} and {config.model.seq_len} in "
            "the model"
        )
    if vocab is not None and prepared.vocab != vocab:
        raise UserError(
            f"{what} maps ids to other symbols than the run's vocab.json; the checkpoint "
            "cannot be trained on it"
        )
    if config.fingerprint and prepared.fingerprint != config.fingerprint:
        raise UserError(
            f"{what} is not the data this run was trained on (fingerprint "
            f"{prepared.fingerprint[:12]} ≠ {config.fingerprint[:12]}); prepare the same corpus "
            "again or start a new run"
        )


def _evaluator(config: RunConfig, prepared: PreparedCorpus, progress: bool) -> Any:
    from textgan.metrics import JSEvaluator

    return JSEvaluator(prepared, n_samples=config.train.eval_samples, progress=progress)


def _evaluate(trainer: Trainer, evaluator: Any, config: RunConfig) -> tuple[dict, np.ndarray]:
    """JS-1..4 of ``eval_samples`` argmax samples drawn from a fixed noise seed."""
    from textgan.sampling import generate_ids

    t = config.train
    was_training = trainer.generator.training
    batches = generate_ids(
        trainer.generator,
        t.eval_samples,
        batch_size=min(1024, t.eval_samples),
        seed=t.seed,
        device=trainer.device,
    )
    ids = np.concatenate(list(batches))
    trainer.generator.train(was_training)
    return evaluator(ids), ids


def _loop(
    config: RunConfig,
    prepared: PreparedCorpus,
    trainer: Trainer,
    evaluator: Any,
    output: _RunOutput,
    hooks: Sequence[Hook],
    last_ckpt: Path | None = None,
) -> TrainResult:
    from tqdm.auto import tqdm

    from textgan.sampling import samples_to_text

    t = config.train
    output.echo(_summary(config, trainer, prepared, output.run.path))
    for line in _config_lines(config):
        output.echo(line)
    meter = _Meter()
    last_eval: dict[str, Any] | None = None
    base_elapsed, started = trainer.elapsed, time.perf_counter()
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
        if _nonfinite(means) or not trainer.params_finite():
            _diverged(trainer.iteration, means, last_ckpt)
        trainer.elapsed = elapsed()
        path = output.checkpoint(trainer, t.keep)
        output.plots()
        return path

    with _StopFlag(output) as stop, bar:
        budget = math.inf if t.max_minutes is None else 60.0 * t.max_minutes
        out_of_time = False
        while trainer.iteration < t.iters and stop.signal is None and not out_of_time:
            trainer.step(meter)
            k = trainer.iteration
            out_of_time = time.perf_counter() - started >= budget
            last = k == t.iters or out_of_time
            if k % t.log_every == 0 or last:
                means = meter.means()
                if _nonfinite(means):
                    _diverged(k, means, last_ckpt)
                output.rows([{"iter": k, "time": round(elapsed(), 3), **means}])
                meter.reset()
                postfix["W"] = f"{means['wasserstein']:.3f}"
            if k % t.eval_every == 0 or last:
                scores, ids = _evaluate(trainer, evaluator, config)
                last_eval = {"iter": k, "time": round(elapsed(), 3), **scores}
                output.rows([last_eval])
                output.samples(k, samples_to_text(ids, prepared.vocab))
                postfix["JS4"] = f"{last_eval.get('js4', float('nan')):.3f}"
            if k % t.diag_every == 0 or last:
                output.diagnostics(trainer, k)
            bar.set_postfix(postfix, refresh=False)
            bar.update(1)
            for hook in hooks:
                hook(trainer, k)
            if k % t.ckpt_every == 0 or last:
                last_ckpt = save() or last_ckpt
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


def _diverged(k: int, means: Mapping[str, float], last_ckpt: Path | None) -> None:
    bad = ", ".join(f"{key} = {means[key]}" for key in _nonfinite(means)) or "weights not finite"
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


# -- sampling from a checkpoint -----------------------------------------------------------------


def load_generator(
    path: str | Path, device: str = "auto"
) -> tuple[Generator, Vocab, ckpt_io.Checkpoint]:
    """The trained generator of a checkpoint (or of a run's newest one), ready on ``device``."""
    ckpt = ckpt_io.load_checkpoint(path, training_state=False)
    model = ckpt.config.get("model") if isinstance(ckpt.config, dict) else None
    if not isinstance(model, dict):
        raise UserError(f"checkpoint {ckpt.path} has no model config in its config.json")
    model_cfg = _build(ModelConfig, model, f"checkpoint {ckpt.path}")
    if model_cfg.vocab_size != len(ckpt.vocab):
        raise UserError(
            f"checkpoint {ckpt.path}: the model has {model_cfg.vocab_size} ids, its vocabulary "
            f"{len(ckpt.vocab)}"
        )
    generator = Generator(model_cfg)
    try:
        generator.load_state_dict(ckpt.generator)
    except RuntimeError as err:
        raise UserError(
            f"checkpoint {ckpt.path}: the generator weights do not fit its config "
            f"({first_line(err)})"
        ) from None
    return generator.to(pick_device(device)).eval(), ckpt.vocab, ckpt


def sample_text(
    generator: Generator,
    vocab: Vocab,
    n: int,
    *,
    temperature: float | None = None,
    seed: int = 0,
    batch_size: int = 1024,
) -> Iterator[list[str]]:
    """``n`` samples as strings, one list per batch (trailing padding removed)."""
    from textgan.sampling import generate_ids, samples_to_text

    device = next(generator.parameters()).device
    for ids in generate_ids(
        generator, n, batch_size=batch_size, temperature=temperature, seed=seed, device=device
    ):
        yield samples_to_text(ids, vocab)


def read_run_config(run_dir: str | Path) -> RunConfig:
    """The saved config of a run directory."""
    run = RunDir.open(run_dir)
    return RunConfig.from_dict(rundir.read_json(run.config, "run config"), str(run.config))


__all__ = [
    "PRESETS",
    "RESUMABLE",
    "RunConfig",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "layered_config",
    "load_generator",
    "pick_device",
    "read_run_config",
    "refuse_resume_changes",
    "resolve_run_config",
    "resume",
    "sample_text",
    "train",
]
