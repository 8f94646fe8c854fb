"""Quality levers screened at equal compute: which settings give better samples for the same time?

Every variant is the ``small`` preset plus a few changed fields, trained on the same corpus for
the same budget of **single-core CPU time**, with several seeds. On a dedicated core that is
wall-clock time; measured as CPU time it stays fair when other jobs share the machine (a
wall-clock budget would hand whoever runs during a quiet moment more iterations). The budget is
turned into iterations per variant by a calibration: the CPU time of ``--calib`` iterations of
each variant after a warm-up, in this process, on one thread. Training then runs to that fixed
number of iterations, so the results do not depend on the load during training.

Each run's final evaluation gives JS-1..4 of 640 argmax samples of the raw generator and of its
EMA (``ema_js``), with the real-vs-real floors; Self-BLEU-4 and the LM scores come from
``textgan score`` on the EMA samples of the last evaluation. Writes ``OUT/screen.json`` and
``OUT/screen.md``.

    OMP_NUM_THREADS=1 python benchmarks/screen_quality.py --cpu-minutes 6 --seeds 0,1
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from shared_corpus import GBW

import textgan
from textgan.config import layered_config
from textgan.metrics.scoring import Target, make_scorer, score_lines
from textgan.training.loop import train
from textgan.training.meter import Meter
from textgan.training.setup import resolve_run_config
from textgan.training.trainer import Trainer

# The levers, each a change to the `small` preset (lr 3e-4 for both networks, β = (0.5, 0.9),
# 5 critic steps, batch 64, residual scale 0.3).
VARIANTS: dict[str, dict[str, dict]] = {
    "small": {},
    "ttur": {"train": {"lr_critic": 4e-4, "lr_gen": 1e-4}},  # Heusel et al. 2017
    "critic2": {"train": {"critic_iters": 2}},  # more generator steps per second
    "beta0": {"train": {"beta1": 0.0, "beta2": 0.99}},  # SAGAN / BigGAN's Adam
    "batch128": {"train": {"batch_size": 128}},
    "res1": {"model": {"res_scale": 1.0}},
}


def layers(args: argparse.Namespace, variant: str, seed: int, iters: int, out: Path) -> dict:
    change = VARIANTS[variant]
    every = max(1, iters // 4)
    train_fields = {
        "seed": seed,
        "iters": iters,
        "eval_every": every,
        "diag_every": iters,
        "ckpt_every": iters,
        "log_every": 20,
        "run_dir": str(out / f"{variant}-seed{seed}"),
        **change.get("train", {}),
    }
    overrides = {
        "corpus": {"corpus": args.corpus, "data_dir": args.data_dir},
        "model": dict(change.get("model", {})),
        "train": train_fields,
    }
    return layered_config("small", None, overrides)


def cpu_seconds_per_iter(args: argparse.Namespace, variant: str, out: Path) -> float:
    """CPU time of one iteration of ``variant``, minimum over ``--calib-repeats`` timings."""
    config, prepared = resolve_run_config(layers(args, variant, 0, 1, out), progress=False)
    trainer = Trainer(config, prepared.train, torch.device("cpu"))
    meter = Meter()
    for _ in range(5):
        trainer.step(meter)
    best = float("inf")
    for _ in range(args.calib_repeats):
        start = time.process_time()
        for _ in range(args.calib):
            trainer.step(meter)
        best = min(best, (time.process_time() - start) / args.calib)
    return best


def last_eval(run_dir: Path) -> dict:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if "js4" in r][-1]


def run_one(args, variant: str, seed: int, iters: int, out: Path, scorer) -> dict:
    config, prepared = resolve_run_config(layers(args, variant, seed, iters, out), progress=False)
    start = time.process_time()
    result = train(config, prepared, progress=False)
    cpu = time.process_time() - start
    row = last_eval(result.run_dir)
    lines = (result.run_dir / "samples" / f"iter_{row['iter']}.txt").read_text().splitlines()
    report = score_lines(lines, Target(run=result.run_dir), scorer=scorer)
    keep = ("self_bleu4", "lm_bits", "reverse_lm_bits", "word_known")
    return {
        "variant": variant,
        "seed": seed,
        "iters": iters,
        "cpu_s": round(cpu, 1),
        **{k: row.get(k) for k in row if k.startswith(("js", "ema_js", "floor_js"))},
        **{k: report.get(k) for k in keep},
        **{f"floor_{k}": report.get(f"floor_{k}") for k in keep},
    }


def table(rows: list[dict], budget_s: float) -> str:
    head = (
        "| variant | iters | JS-1 | JS-2 | JS-3 | JS-4 | EMA JS-4 | Self-BLEU-4 | LM bits |"
        " reverse-LM bits |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    first = rows[0]
    floor = (
        f"| real vs real (floor) | | {first['floor_js1']:.3f} | {first['floor_js2']:.3f} | "
        f"{first['floor_js3']:.3f} | {first['floor_js4']:.3f} | | "
        f"{first['floor_self_bleu4']:.3f} | {first['floor_lm_bits']:.3f} | "
        f"{first['floor_reverse_lm_bits']:.3f} |\n"
    )
    body = []
    for variant in VARIANTS:
        runs = [r for r in rows if r["variant"] == variant]
        if not runs:
            continue
        body.append(
            f"| {variant} | {runs[0]['iters']} | "
            + " | ".join(_mean_sd([r[k] for r in runs]) for k in _COLUMNS)
            + " |\n"
        )
    note = f"\nBudget: {budget_s / 60:.1f} single-core CPU minutes per run; mean ± sd over seeds.\n"
    return head + floor + "".join(body) + note


_COLUMNS = ("js1", "js2", "js3", "js4", "ema_js4", "self_bleu4", "lm_bits", "reverse_lm_bits")


def _mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def combine(out: Path, budget: float) -> None:
    """One table of the runs of several ``--seeds`` processes (their screen-*.json files)."""
    rows = []
    for path in sorted(out.glob("screen-*.json")):
        rows += json.loads(path.read_text())["rows"]
    (out / "screen.md").write_text(table(rows, budget))
    print(table(rows, budget))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--corpus", default=str(GBW))
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--cpu-minutes", type=float, default=6.0)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--calib", type=int, default=20)
    ap.add_argument("--calib-repeats", type=int, default=3)
    ap.add_argument(
        "--calibration", type=json.loads, help="JSON {variant: CPU s/iteration} of an earlier run"
    )
    ap.add_argument("--out", type=Path, default=Path("runs/screen"))
    ap.add_argument(
        "--combine", action="store_true", help="only merge OUT/screen-*.json into OUT/screen.md"
    )
    args = ap.parse_args()
    if args.combine:
        combine(args.out, 60 * args.cpu_minutes)
        return
    torch.set_num_threads(1)
    variants = args.variants.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    budget = 60 * args.cpu_minutes
    calib = args.calibration or {
        v: cpu_seconds_per_iter(args, v, args.out / "calib") for v in variants
    }
    print("CPU s/iteration:", {v: round(s, 4) for v, s in calib.items()}, flush=True)
    scorer = make_scorer(
        Target(corpus=args.corpus, data_dir=args.data_dir), None, 4, 0, None, False
    )
    rows = []
    for seed in seeds:
        for v in variants:
            rows.append(run_one(args, v, seed, max(1, int(budget / calib[v])), args.out, scorer))
            print(json.dumps(rows[-1]), flush=True)
            (args.out / f"screen-{args.seeds}.json").write_text(
                json.dumps({"calib": calib, "rows": rows})
            )
    (args.out / f"screen-{args.seeds}.md").write_text(table(rows, budget))
    print(table(rows, budget))
    print(f"textgan {textgan.__version__}, torch {torch.__version__}")


if __name__ == "__main__":
    main()
