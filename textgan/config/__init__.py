"""The run's configuration: four sections, layering, ``config.json``; the presets live in
``textgan.config.presets``.

Each field is declared once, with ``textgan.settings.setting``: its default, help, allowed
values and range. The CLI generates the flags of ``textgan train`` (and ``prepare``) from these
declarations, the JSON layer checks types against them, and ``validate_run`` checks ranges.
Messages name fields (``train.iters``); the CLI turns them into flags.

Layering: preset < ``--config`` file < explicit flags. ``config.json`` in every run directory is
the resolved config; it loads back through ``RunConfig.from_dict``.

This module imports neither torch nor datasets, so the CLI can build its options at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from textgan import files
from textgan.config.presets import PRESETS, preset_layers
from textgan.corpus import CorpusConfig
from textgan.errors import UserError
from textgan.settings import SettingError, check_settings, check_type, declared, setting

CRITIC_NORMS = ("none", "layer", "batch")
# The names of the registries of textgan.nn (each checked there): declared here so that the CLI
# offers them as choices without importing torch. A new entry goes into both.
GENERATOR_KINDS = ("paper", "attn", "any-length")  # textgan.nn.registry.GENERATORS
CRITIC_KINDS = ("paper", "windows", "attn", "any-length")  # textgan.nn.registry.CRITICS
LOSS_KINDS = ("wgan", "hinge", "ns")  # textgan.nn.losses.LOSSES
LIPSCHITZ_KINDS = ("gp", "gp-one-sided", "gp-fd", "r1", "clip", "sn", "sn-conv", "none")
PRECISIONS = ("auto", "fp32", "tf32", "bf16")
LR_DECAYS = ("constant", "linear")
MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class ModelConfig:
    """Which networks and their sizes; the defaults are the paper's (D = 512, 5 blocks, kernel 5).

    The critic's width and depth follow the generator's unless set: a config.json written
    before they existed (without them) describes the same networks, and so does a search or
    a recipe that changes ``dim`` alone.
    """

    vocab_size: int = setting(MISSING, "Symbols per position (from the corpus).", cli=False)
    seq_len: int = setting(32, "Positions per sequence (from the corpus).", minimum=1, cli=False)
    dim: int = setting(512, "Channels of the generator (and of the critic, unless set).", minimum=1)
    blocks: int = setting(5, "Residual blocks of the generator (and of the critic).", minimum=0)
    kernel: int = setting(5, "Convolution width.", minimum=1)
    res_scale: float = setting(0.3, "Residual branch scale.")
    noise_dim: int = setting(128, "Size of the noise z.", minimum=1)
    critic_norm: str = setting("none", "Critic normalization.", choices=CRITIC_NORMS)
    # Declared after the fields above, which may still be given by position.
    generator: str = setting("paper", "Generator network.", choices=GENERATOR_KINDS)
    critic: str = setting("paper", "Critic network.", choices=CRITIC_KINDS)
    critic_dim: int | None = setting(None, "Channels of the critic [dim].", minimum=1)
    critic_blocks: int | None = setting(None, "Residual blocks of the critic [blocks].", minimum=0)

    def __post_init__(self) -> None:
        check_settings(self, "model")
        if self.vocab_size < 2:
            raise SettingError("model.vocab_size", f"must be at least 2, got {self.vocab_size}")

    @property
    def critic_width(self) -> int:
        """The critic's channels: ``critic_dim``, else ``dim``."""
        return self.dim if self.critic_dim is None else self.critic_dim

    @property
    def critic_depth(self) -> int:
        """The critic's residual blocks: ``critic_blocks``, else ``blocks``."""
        return self.blocks if self.critic_blocks is None else self.critic_blocks


@dataclass(frozen=True)
class LipschitzConfig:
    """The critic's objective: the loss of both networks, the Lipschitz constraint of the
    critic, its weight λ, its target slope K and the clipping bound c."""

    kind: str = setting(
        "gp", "Lipschitz constraint of the critic.", choices=LIPSCHITZ_KINDS, flag="--lipschitz"
    )
    lam: float = setting(10.0, "Penalty weight λ (γ of r1).", minimum=0.0, flag="--lambda")
    target: float = setting(
        1.0, "Target slope K of the penalty.", positive=True, flag="--lipschitz-target"
    )
    clip: float = setting(0.01, "Clipping bound c for --lipschitz clip.", positive=True)
    # Declared after the fields above, which may still be given by position ("gp").
    loss: str = setting(
        "wgan", "Loss of both networks: wgan (the paper's), hinge, ns.", choices=LOSS_KINDS
    )

    def __post_init__(self) -> None:
        check_settings(self, "lipschitz")


@dataclass(frozen=True)
class TrainConfig:
    """How to train: optimizer, schedule, logging, evaluation, checkpoints, where the run goes.

    The defaults are the paper's (preset ``paper``).
    """

    preset: str = setting("paper", "Preset the run started from.", cli=False)
    iters: int = setting(200_000, "Generator iterations.", minimum=1, resumable=True)
    batch_size: int = setting(64, "Sequences per batch.", minimum=1)
    critic_iters: int = setting(10, "Critic steps per generator step.", minimum=1)
    # Lazy regularization (Karras et al. 2020, StyleGAN2): the penalty's input gradient costs
    # about as much as the rest of a critic step; on every k-th step with weight λ·k it
    # regularizes as strongly on average.
    penalty_every: int = setting(
        1, "Apply the gradient penalty on every k-th critic step only, weighted λ·k.", minimum=1
    )
    lr: float = setting(1e-4, "Adam learning rate, both networks.", positive=True)
    # Two time-scale update rule (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update
    # Rule"): each network its own rate; unset, it is lr.
    lr_critic: float | None = setting(None, "Critic's Adam learning rate [lr].", positive=True)
    lr_gen: float | None = setting(None, "Generator's Adam learning rate [lr].", positive=True)
    # Linear decay to 0 over the run, as Gulrajani et al.'s CIFAR-10 ResNets train: a large
    # early rate for speed, a small late one for the last gains (textgan.training.trainer.lr_scale).
    lr_decay: str = setting(
        "constant",
        "Learning-rate schedule of both networks: constant, or linear (to 0 at --iters).",
        choices=LR_DECAYS,
    )
    beta1: float = setting(0.5, "Adam β1, in [0, 1).")
    beta2: float = setting(0.9, "Adam β2, in [0, 1).")
    # 0.999 per generator step: the generator average of Karras et al. 2018 (Progressive GANs),
    # ramped up over the first steps (textgan.training.trainer.ema_decay_at).
    ema_decay: float = setting(
        0.999, "Decay of the generator's weight average (EMA), in [0, 1); 0 turns it off."
    )
    # Without it the generator spends its first steps learning which characters are common.
    unigram_init: bool = setting(
        False, "Start the generator's output bias at the training text's log character frequencies."
    )
    # Press et al. 2017: short rows first (textgan.training.curriculum, checked there).
    curriculum: str | None = setting(
        None,
        "Row lengths LEN:FRACTION,...: 8:0.2,16:0.5 trains on rows cut to 8 symbols until "
        "0.2·--iters, to 16 until 0.5·--iters, then whole (--generator/--critic any-length).",
    )
    seed: int = setting(0, "Seed of every random stream.", minimum=0, maximum=MAX_SEED)
    device: str = setting(
        "auto", "auto (CUDA, then MPS, then CPU) | cpu | cuda[:N] | mps.", resumable=True
    )
    log_every: int = setting(
        10, "Iterations between metrics.jsonl rows.", minimum=1, resumable=True
    )
    eval_every: int = setting(100, "Iterations between JS evaluations.", minimum=1, resumable=True)
    # Time to quality (study compare, tune): recipes whose iterations differ in cost are evaluated
    # at the same moments of wall-clock time.
    eval_minutes: float | None = setting(
        None,
        "Wall-clock minutes between JS evaluations, instead of --eval-every.",
        positive=True,
        resumable=True,
    )
    eval_samples: int = setting(640, "Argmax samples per evaluation.", minimum=1)
    diag_every: int = setting(
        100, "Iterations between critic diagnostics (and the last).", minimum=1, resumable=True
    )
    # Work scheduled by iterations takes more of a wall-clock budget from a recipe with cheap
    # iterations: studies and tune put diagnostics and checkpoints on wall-clock grids too.
    diag_minutes: float | None = setting(
        None,
        "Wall-clock minutes between critic diagnostics, instead of --diag-every.",
        positive=True,
        resumable=True,
    )
    ckpt_every: int = setting(1000, "Iterations between checkpoints.", minimum=1, resumable=True)
    ckpt_minutes: float | None = setting(
        None,
        "Wall-clock minutes between checkpoints (and their figures), instead of --ckpt-every.",
        positive=True,
        resumable=True,
    )
    keep: int = setting(3, "Checkpoints kept.", minimum=1, resumable=True)
    max_minutes: float | None = setting(
        None, "Stop (evaluated, saved) after this many minutes.", positive=True, resumable=True
    )
    # A linear decay ends at --iters: fitted to the budget, it ends with it (training/fit.py).
    fit_iters: bool = setting(
        False, "With --max-minutes: set --iters by a timed trial so that the run ends inside it."
    )
    precision: str = setting(
        "auto",
        "Arithmetic: bf16 autocast with fp32 weights, tf32 (CUDA), fp32; auto = bf16 where the "
        "device computes it natively.",
        choices=PRECISIONS,
        resumable=True,
    )
    compile: bool = setting(
        False,
        "torch.compile the step, on CUDA with CUDA graphs (falls back to eager if it cannot; "
        "no gain on CPUs).",
        resumable=True,
    )
    # A rank that dies or stalls must not hang the others: every collective of a torchrun job
    # (gloo, and nccl with its async error handling) gives up after this many seconds.
    dist_timeout: float = setting(
        300.0,
        "Seconds the processes of a torchrun job wait for each other before stopping.",
        positive=True,
        resumable=True,
    )
    name: str | None = setting(None, "Run name: the run goes to runs/NAME [<corpus>-<time>].")
    run_dir: str | None = setting(None, "Run directory (instead of runs/NAME).")

    def __post_init__(self) -> None:
        check_settings(self, "train")
        if self.preset not in PRESETS:
            raise SettingError(
                "train.preset", f"must be one of {', '.join(PRESETS)}, got {self.preset!r}"
            )
        for beta in ("beta1", "beta2", "ema_decay"):
            if not 0 <= getattr(self, beta) < 1:
                raise SettingError(
                    f"train.{beta}", f"must lie in [0, 1), got {getattr(self, beta)}"
                )
        if self.name is not None and (not self.name or Path(self.name).name != self.name):
            raise SettingError(
                "train.name", f"must be a plain name, got {self.name!r}; give paths as run_dir"
            )


SECTIONS: dict[str, type] = {
    "corpus": CorpusConfig,
    "model": ModelConfig,
    "lipschitz": LipschitzConfig,
    "train": TrainConfig,
}
# Derived from the prepared corpus, never set by hand.
DERIVED = {"model": ("vocab_size", "seq_len")}
# What ``--resume`` may change: where and how the run continues, never what it trains.
RESUMABLE = tuple(f.name for f in declared(TrainConfig) if f.metadata["resumable"])


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
    def from_dict(cls, data: Any, source: str = "config") -> RunConfig:
        if not isinstance(data, Mapping) or set(SECTIONS) - set(data):
            raise UserError(
                f"{source} is not a textgan run config (sections {', '.join(SECTIONS)})"
            )
        check_fields(data, source, allow_derived=True)
        parts = {name: build(kind, data[name], source) for name, kind in SECTIONS.items()}
        return cls(**parts, fingerprint=str(data.get("fingerprint", "")))

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        """The config saved in a run's ``config.json``."""
        return cls.from_dict(files.read_json(Path(path), "run config"), str(path))


def check_fields(data: Mapping[str, Any], source: str, allow_derived: bool = False) -> None:
    """UserError for an unknown section or field, or a value of the wrong type."""
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
            if not allow_derived and key in DERIVED.get(section, ()):
                raise UserError(f"{source}: {section}.{key} follows from the corpus; remove it")
            try:
                check_type(SECTIONS[section], key, value, f"{section}.{key}")
            except SettingError as err:
                raise UserError(f"{source}: {err}") from None


def build(kind: type, values: Mapping[str, Any], source: str) -> Any:
    """``kind(**values)``, ints widened to floats where the field is a float."""
    try:
        floats = {k: float(v) for k, v in values.items() if _is_float_field(kind, k, v)}
        return kind(**{**values, **floats})
    except SettingError:
        raise
    except (TypeError, ValueError) as err:
        raise UserError(f"{source}: invalid {kind.__name__} ({err})") from None


def _is_float_field(kind: type, key: str, value: Any) -> bool:
    default = next((f.default for f in fields(kind) if f.name == key), MISSING)
    return isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool)


def read_config_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """The sections of a ``--config`` JSON file: any subset of a ``config.json``'s fields.

    A run's own ``config.json`` is accepted as a template: its corpus-derived fields
    (``fingerprint``, ``model.vocab_size``, ``model.seq_len``) are dropped, and so are the
    old run's ``train.name`` and ``train.run_dir`` (the new run gets its own directory).
    """
    path = Path(path)
    data = files.read_json(path, "config file")
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a JSON object of sections")
    dropped = dict(DERIVED)
    if data.pop("fingerprint", None) is not None:
        dropped["train"] = ("name", "run_dir")
    for section, keys in dropped.items():
        for key in keys:
            if isinstance(data.get(section), dict):
                data[section].pop(key, None)
    check_fields(data, f"config file {path}")
    return data


def layered_config(
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Field values per section: preset < its shape for the budget < ``config_file`` <
    ``overrides`` (explicit flags).

    The preset is ``preset`` if given, else the file's ``train.preset``, else ``paper``; the
    budget is ``train.max_minutes`` of the flags, else of the file.
    """
    file_layer = read_config_file(config_file) if config_file else {}
    overrides = {k: dict(v) for k, v in (overrides or {}).items()}
    check_fields(overrides, "options")
    name = preset or file_layer.get("train", {}).get("preset") or "paper"
    if name not in PRESETS:
        raise SettingError("train.preset", f"must be one of {', '.join(PRESETS)}, got {name!r}")
    merged: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
    budgets = [layer.get("train", {}).get("max_minutes") for layer in (overrides, file_layer)]
    budget = next((b for b in budgets if b is not None), None)
    for layer in (*preset_layers(name, budget), file_layer, overrides):
        for section, values in layer.items():
            merged[section].update(values)
    merged["train"]["preset"] = name
    return merged


def with_train(config: RunConfig, **changes: Any) -> RunConfig:
    """``config`` with some train fields changed (and checked)."""
    return replace(config, train=replace(config.train, **changes))
