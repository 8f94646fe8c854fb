"""What a run starts from: its config resolved from the option layers and checked, the
prepared corpus (read in turns by the processes of a torchrun job), and the checks that the data
is the data the model was built for."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from textgan.config import LipschitzConfig, ModelConfig, RunConfig, TrainConfig, build
from textgan.corpus import CorpusConfig, PreparedCorpus, prepare
from textgan.devices import parse_device, pick_device
from textgan.errors import UserError
from textgan.files import rundir
from textgan.nn import memory
from textgan.nn.lipschitz import check_choices
from textgan.training import distributed
from textgan.vocab import Vocab

PREPARE_LOCK = ".prepare.lock"  # in --data-dir: the ranks of a job prepare a corpus in turns


def resolve_run_config(
    layers: Mapping[str, Mapping[str, Any]], progress: bool = True
) -> tuple[RunConfig, PreparedCorpus]:
    """Validate the options, prepare the corpus (or open its cache) and fill in the sizes that
    follow from it."""
    train_cfg = build(TrainConfig, layers["train"], "options")
    if train_cfg.device != "auto":
        parse_device(train_cfg.device)
    lip_cfg = build(LipschitzConfig, layers["lipschitz"], "options")
    check_choices(layers["model"].get("critic_norm", "none"), train_cfg.penalty_every, lip_cfg)
    corpus_cfg = build(CorpusConfig, layers["corpus"], "options")
    # Before the corpus is read: its vocabulary is not known yet, 2 symbols is the least.
    sizes = {"vocab_size": 2, "seq_len": corpus_cfg.seq_len}
    model_floor = build(ModelConfig, {**layers["model"], **sizes}, "options")
    device = pick_device(train_cfg.device)
    memory.check_run(model_floor, train_cfg.batch_size, train_cfg.ema_decay > 0, device)
    prepared = prepare_corpus(corpus_cfg, progress)
    distributed.setup(device, train_cfg.dist_timeout)
    # The floor needs as many real held-out lines as samples: a small corpus evaluates fewer.
    if len(prepared.heldout) < train_cfg.eval_samples:
        train_cfg = replace(train_cfg, eval_samples=max(1, len(prepared.heldout)))
    model_values = {"vocab_size": len(prepared.vocab), "seq_len": prepared.seq_len}
    model_cfg = build(ModelConfig, {**layers["model"], **model_values}, "options")
    config = RunConfig(corpus_cfg, model_cfg, lip_cfg, train_cfg, prepared.fingerprint)
    return config, prepared


def prepare_corpus(cfg: CorpusConfig, progress: bool = True) -> PreparedCorpus:
    """The prepared corpus, read before this process joins a distributed job: a first
    preparation (billion_words from the hub) can outlast ``--dist-timeout``, which bounds every
    wait inside the job. The ranks take turns (a lock file in ``--data-dir``): the first one
    builds the cache and shows its progress, the others then find it and read it."""
    if distributed.env_world_size() <= 1:
        return prepare(cfg, progress=progress)
    with rundir.taking_turns(Path(cfg.data_dir).expanduser() / PREPARE_LOCK):
        return prepare(cfg, progress=progress)


def load_vocab(path: Path) -> Vocab:
    try:
        return Vocab.load(path)
    except FileNotFoundError:
        raise UserError(f"the run's vocabulary {path} is missing; restore it") from None
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"the run's vocabulary {path} is invalid ({err})") from None


def check_corpus(config: RunConfig, prepared: PreparedCorpus, vocab: Vocab | None) -> None:
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
