"""What critic diagnostics and training-time plots cost, as a share of training time.

Per preset and constraint: seconds per training iteration (``Trainer.step``), per
``diagnose_trainer`` call and per ``write_run_plots`` call (the redraw at each checkpoint, on a
run directory with the logs of a whole run at that preset), and the overhead each adds at the
preset's schedule: ``diag / (diag_every · iteration)`` and ``plots / (ckpt_every · iteration)``.
Calls alternate so a burst of load from other processes hits all of them; the minimum over
repeats is reported.

    python benchmarks/bench_diagnostics.py                       # small: gp and clip
    python benchmarks/bench_diagnostics.py --presets small,paper --constraints gp,sn

Synthetic ids stand in for a corpus (timing does not depend on the text).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from textgan.config import PRESETS, RunConfig, TrainConfig
from textgan.corpus import CorpusConfig
from textgan.nn.lipschitz import LipschitzConfig
from textgan.nn.networks import ModelConfig
from textgan.plots import write_run_plots
from textgan.training.diagnostics import append_diagnostics, diagnose_trainer
from textgan.training.meter import Meter
from textgan.training.trainer import Trainer


def _trainer(preset: str, kind: str, vocab: int) -> Trainer:
    values = PRESETS[preset]
    model = ModelConfig(vocab_size=vocab, **values["model"])
    train = TrainConfig(preset=preset, **values["train"], device="cpu")
    config = RunConfig(CorpusConfig(), model, LipschitzConfig(kind=kind), train)
    ids = np.random.default_rng(0).integers(2, vocab, size=(20_000, model.seq_len), dtype=np.uint8)
    return Trainer(config, ids, torch.device("cpu"))


def _run_dir(trainer: Trainer, root: Path) -> Path:
    """A run directory holding the logs of a full run at the trainer's schedule."""
    t = trainer.config.train
    run = root / "run"
    (run / "plots").mkdir(parents=True)
    kind = trainer.config.lipschitz.kind
    (run / "config.json").write_text(json.dumps({"lipschitz": {"kind": kind}}))
    rng = np.random.default_rng(0)
    rows = []
    for k in range(t.log_every, t.iters + 1, t.log_every):
        train = ("critic_loss", "gen_loss", "wasserstein", "gp", "grad_norm")
        rows.append({"iter": k, "time": 0.1 * k, **{key: float(rng.normal()) for key in train}})
        if k % t.eval_every == 0:
            js = {f"js{n}": float(rng.uniform()) for n in range(1, 5)}
            rows.append({"iter": k, "time": 0.1 * k, **js, **{f"floor_{name}": 0.1 for name in js}})
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    record = diagnose_trainer(trainer, 0)
    for k in range(t.diag_every, t.iters + 1, t.diag_every):
        append_diagnostics(run, {**record, "iter": k})
    return run


def _time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def bench(preset: str, kind: str, vocab: int, repeats: int) -> dict:
    trainer = _trainer(preset, kind, vocab)
    meter = Meter()
    trainer.step(meter)  # warm-up
    t = trainer.config.train
    with tempfile.TemporaryDirectory() as tmp:
        run = _run_dir(trainer, Path(tmp))
        step = diag = plots = float("inf")
        for _ in range(repeats):
            step = min(step, _time(lambda: trainer.step(meter), 1))
            diag = min(diag, _time(lambda: diagnose_trainer(trainer, trainer.iteration), 1))
            plots = min(plots, _time(lambda: write_run_plots(run), 1))
    return {
        "preset": preset,
        "constraint": kind,
        "s_per_iter": step,
        "s_per_diagnostics": diag,
        "s_per_plots": plots,
        "diag_overhead": diag / (t.diag_every * step),
        "plots_overhead": plots / (t.ckpt_every * step),
        "diag_every": t.diag_every,
        "ckpt_every": t.ckpt_every,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="small")
    parser.add_argument("--constraints", default="gp,clip")
    parser.add_argument("--vocab", type=int, default=101, help="Billion Word shards: 101")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="Also write the results here.")
    args = parser.parse_args()
    print(
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    header = "preset  constraint  s/iter  s/diag  s/plots  diag overhead  plots overhead"
    print(header)
    results = []
    for preset in args.presets.split(","):
        for kind in args.constraints.split(","):
            r = bench(preset, kind, args.vocab, args.repeats)
            results.append(r)
            print(
                f"{preset:<7} {kind:<11} {r['s_per_iter']:.3f}  {r['s_per_diagnostics']:.3f}  "
                f"{r['s_per_plots']:.3f}    {r['diag_overhead']:.2%} (every {r['diag_every']})"
                f"   {r['plots_overhead']:.2%} (every {r['ckpt_every']})"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
