"""``textgan export``: a run's generator as a self-contained model folder (the layout of
``textgan.sharing.hub``): config, safetensors weights, vocabulary and a model card whose numbers
come from the run's ``metrics.jsonl`` and from scoring the exported weights at export time.

The folder is written under a temporary name and renamed into place.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from textgan.corpus import PreparedCorpus
from textgan.errors import UserError
from textgan.files import TMP_PREFIX, disk_error, fsync_dir, read_rows
from textgan.files.checkpoint import (
    Checkpoint,
    checkpoint_name,
    load_checkpoint,
    resolve_checkpoint,
)
from textgan.files.rundir import RunDir
from textgan.generation import sampling
from textgan.sharing import card, hub

SCORE_SAMPLES = 640  # as the paper; score_lines caps it at the held-out split
SAMPLE_SEED = 0
CARD_SAMPLES = 10
# Where this machine caches the corpus: the model's users choose their own (--data-dir).
LOCAL_CORPUS_FIELDS = ("data_dir",)


def refuse_existing(out: Path) -> None:
    """UserError when ``out`` holds anything: an export never overwrites."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} already exists and is not empty; choose a new --out or delete it")


def checkpoint_path(run: RunDir, checkpoint: str | None) -> Path:
    """The checkpoint to export: the newest, an iteration number or a checkpoint folder of
    ``run`` (another run's checkpoint would get this run's numbers, corpus and command)."""
    if checkpoint is None:
        return run.latest_checkpoint()
    if not checkpoint.isdigit():
        path = resolve_checkpoint(checkpoint)
        if path.resolve().parent != run.checkpoints.resolve():
            raise UserError(
                f"checkpoint {checkpoint} is not one of run {run.path}'s (in {run.checkpoints}); "
                "export the run it belongs to, or give one of this run's iterations"
            )
        return path
    path = run.checkpoints / checkpoint_name(int(checkpoint))
    if not path.is_dir():
        have = ", ".join(str(int(p.name[5:])) for p in run.checkpoint_dirs()) or "none"
        raise UserError(
            f"run {run.path} has no checkpoint at iteration {checkpoint} (it has: {have})"
        )
    return path


def logged_evaluation(run: RunDir, iteration: int, weights: str) -> dict | None:
    """JS-1..4 of ``weights`` with their floors and N from the run's evaluation at
    ``iteration``; None when the run logged none there (a checkpoint saved on a signal)."""
    prefix = "ema_" if weights == "ema" else ""
    rows = [r for r in read_rows(run.metrics) if r.get("iter") == iteration and f"{prefix}js4" in r]
    if not rows:
        return None
    row = rows[-1]
    js = {f"js{n}": row[f"{prefix}js{n}"] for n in range(1, 5) if f"{prefix}js{n}" in row}
    floors = {k: v for k, v in row.items() if k.startswith("floor_js") and k[8:].isdigit()}
    return {**js, **floors, "n_samples": row.get("n_samples")}


def evaluate_now(config: Mapping[str, Any], generator: Any, prepared: PreparedCorpus) -> dict:
    """JS-1..4 with floors of ``generator`` as the run evaluates: its ``eval_samples`` argmax
    samples from noise seeded by the run's seed, against its corpus."""
    import numpy as np

    from textgan.generation.sampling import generate_ids
    from textgan.metrics import JSEvaluator

    train = config["train"]
    n = min(int(train["eval_samples"]), len(prepared.heldout))
    batches = generate_ids(generator, n, min(1024, n), seed=int(train["seed"]))
    row = JSEvaluator(prepared, n_samples=n, progress=False)(np.concatenate(list(batches)))
    return {k: v.item() if hasattr(v, "item") else v for k, v in row.items()}  # plain numbers


def trained_on(config: Mapping[str, Any], state: Mapping[str, Any]) -> str:
    """The device a run trained on: its setting, or for ``auto`` what its random streams say
    (a CPU generator's state is Mersenne Twister's, an accelerator's a short seed)."""
    import torch

    device = str(config.get("train", {}).get("device", "auto"))
    if device != "auto":
        return device
    rng = state.get("rng", {})
    if "cuda" in rng:
        return "cuda"
    noise = rng.get("noise")
    cpu_size = torch.Generator().get_state().numel()
    return "cpu" if torch.is_tensor(noise) and noise.numel() == cpu_size else "an accelerator"


def model_config(ckpt: Checkpoint, weights: str) -> dict[str, Any]:
    """``config.json`` of the model folder: what loading and scoring it needs. A local corpus
    is named by its file name only and marked ``corpus_local``: its path is the trainer's."""
    from textgan import __version__

    corpus = {
        k: v for k, v in ckpt.config.get("corpus", {}).items() if k not in LOCAL_CORPUS_FIELDS
    }
    published = card.PublishedCorpus.of(str(corpus.get("corpus", "")))
    return {
        "textgan": hub.MODEL_FORMAT,
        "textgan_version": __version__,
        "model_type": "textgan-generator",
        "model": ckpt.config["model"],
        "vocab": {"kind": ckpt.vocab.kind, "size": len(ckpt.vocab), "pad_id": 0, "unk_id": 1},
        "corpus": {**corpus, "corpus": published.name},
        hub.CORPUS_LOCAL: published.local,
        "weights": weights,
        "iteration": ckpt.iteration,
    }


def card_facts(
    run: RunDir, ckpt: Checkpoint, generator: Any, weights: str, name: str, command: str
) -> card.CardFacts:
    """The card's numbers: JS from the run's evaluation at the checkpoint's iteration (or, when
    it logged none there, evaluated now as it would have), the rest scored now on samples of
    ``generator`` (argmax, seed 0), so ``textgan score --model`` reproduces them."""
    from textgan.generation.sampling import sample_text
    from textgan.metrics.report import Scorer
    from textgan.metrics.scoring import Target, run_corpus, score_lines
    from textgan.nn.networks import count_parameters

    prepared = run_corpus(run.path)
    batches = sample_text(generator, ckpt.vocab, SCORE_SAMPLES, seed=SAMPLE_SEED)
    lines = [line for batch in batches for line in batch]
    scorer = Scorer.from_prepared(prepared, 4, progress=False)
    scores = score_lines(lines, Target(run=run.path), scorer=scorer)
    config, state = ckpt.config, ckpt.state or {}
    js = logged_evaluation(run, ckpt.iteration, weights)
    return card.CardFacts(
        name=name,
        corpus=card.PublishedCorpus.of(str(config["corpus"]["corpus"])),
        preset=str(config["train"]["preset"]),
        iteration=ckpt.iteration,
        iters=int(config["train"]["iters"]),
        elapsed_s=float(state.get("elapsed", 0.0)),
        device=trained_on(config, state),
        weights=weights,
        parameters=count_parameters(generator),
        js_at_export=js is None,
        js=js if js is not None else evaluate_now(config, generator, prepared),
        scores=scores,
        samples=lines[:CARD_SAMPLES],
        command=command,
    )


def write_folder(out: Path, files: Mapping[str, bytes]) -> None:
    """Write ``files`` into a temporary folder beside ``out``, on disk, then rename it."""
    tmp = out.parent / f"{TMP_PREFIX}{out.name}.{os.getpid()}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for name, data in files.items():
            with open(tmp / name, "wb") as fh:
                fh.write(data)
                os.fsync(fh.fileno())
        fsync_dir(tmp)
        tmp.replace(out)  # replaces an empty folder, never a full one
        fsync_dir(out.parent)
    except OSError as err:
        if err.errno in (errno.ENOTEMPTY, errno.EEXIST):  # filled since refuse_existing
            refuse_existing(out)
        raise disk_error(out, err) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def export_run(
    run_dir: str | Path,
    out: str | Path,
    *,
    checkpoint: str | None = None,
    raw: bool = False,
    name: str | None = None,
    command: str = "",
) -> Path:
    """Export a run's checkpoint (the newest unless ``checkpoint``: an iteration or a folder)
    to the new model folder ``out``; ``name`` is the model's name on its card (the hub id
    when pushed), ``command`` the one that reproduces the run."""
    from safetensors.torch import save

    from textgan.generation.sampling import build_generator

    out = Path(out)
    refuse_existing(out)
    run = RunDir.open(run_dir)
    ckpt = load_checkpoint(checkpoint_path(run, checkpoint))
    weights, kind = sampling.chosen_weights(ckpt, raw)
    source = f"checkpoint {ckpt.path}"
    generator = build_generator(ckpt.config.get("model"), weights, ckpt.vocab, source).eval()
    facts = card_facts(run, ckpt, generator, kind, name or out.name, command)
    tensors = {k: v.detach().cpu().contiguous() for k, v in generator.state_dict().items()}
    files = {
        hub.CONFIG: json.dumps(model_config(ckpt, kind), indent=2).encode("utf-8") + b"\n",
        hub.WEIGHTS: save(tensors, metadata={"format": "pt", "textgan": str(hub.MODEL_FORMAT)}),
        hub.VOCAB: json.dumps(ckpt.vocab.to_json()).encode("utf-8"),
        hub.CARD: card.render_card(facts).encode("utf-8"),
    }
    write_folder(out, files)
    return out
