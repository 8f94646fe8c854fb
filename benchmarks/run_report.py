"""What one long run wrote, as docs/quality.md shows it: the curve, samples at the start, the
middle and the end, and the last checkpoint's samples on every measure beside the Kneser–Ney
5-gram baseline and the real-vs-real floor.

Reads only the run folder (``metrics.jsonl``, ``samples/iter_*.txt``, the newest checkpoint), so
it works on a run that is still training: "the end" is then the newest evaluation. The middle is
the evaluation nearest half of the run's configured iterations. Writes ``OUT/report.md`` and
``OUT/report.json``; figures come from ``textgan plot RUN``.

    python benchmarks/run_report.py RUN --out runs/report
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial
from pathlib import Path

import torch
from timing import interleaved_minimum

import textgan
from textgan.config import RunConfig
from textgan.files.checkpoint import resolve_checkpoint
from textgan.generation.baseline import baseline_sampler
from textgan.generation.sampling import load_generator, sample_text
from textgan.metrics.report import Scorer
from textgan.metrics.scoring import Target, run_corpus, score_lines
from textgan.plots.logs import load_run

ORDERS = range(1, 9)  # JS-1..8: the 5-gram model reproduces n ≤ 5 by construction
# (report key, heading) of the final comparison, in the order of the table.
MEASURES = (
    *((f"js{n}", f"JS-{n}") for n in ORDERS),
    ("js_words", "word-unigram JS"),
    ("word_known", "known words"),
    ("lm_bits", "LM (bits/char)"),
    ("reverse_lm_bits", "reverse LM (bits/char)"),
    ("self_bleu4", "Self-BLEU-4"),
    ("distinct4", "distinct-4"),
    ("unique_rate", "unique lines"),
    ("copy_rate", "copies of a training line"),
)

SPEED_ROUNDS = 10  # rotated rounds of the three samplers (timing.py)
TOP_PROB = {
    "top_prob_mean": "mean top probability",
    "top_prob_over_0.99": "share of positions with top > 0.99",
}


def curve(run_dir: Path, every: int) -> list[dict]:
    """The evaluation rows at every ``every`` iterations, plus the first and the newest."""
    evals = load_run(run_dir).evals
    keep = [r for i, r in enumerate(evals) if i in (0, len(evals) - 1) or r["iter"] % every == 0]
    return [{k: v for k, v in r.items() if k == "iter" or k == "time" or "js" in k} for r in keep]


def curve_table(rows: list[dict]) -> str:
    js = [f"JS-{n}" for n in range(1, 5)]
    head = "| iteration | wall hours | " + " | ".join(js + [f"EMA {x}" for x in js]) + " |"
    lines = [head, "|" + "---:|" * 10]
    floors = " | ".join(f"{rows[-1][f'floor_js{n}']:.3f}" for n in range(1, 5))
    lines.append(f"| floor | | {floors} | | | | |")
    for r in rows:
        raw = [f"{r[f'js{n}']:.3f}" for n in range(1, 5)]
        ema = [f"{r[f'ema_js{n}']:.3f}" if f"ema_js{n}" in r else "" for n in range(1, 5)]
        lines.append(f"| {r['iter']:,} | {r['time'] / 3600:.2f} | " + " | ".join(raw + ema) + " |")
    return "\n".join(lines)


def sample_points(run_dir: Path, iters: int) -> dict[str, int]:
    """Start, middle and end: the iterations of the first, the middle and the newest sample file
    (no middle before the run has passed half of its iterations)."""
    files = (run_dir / "samples").glob("iter_*.txt")
    have = sorted(int(p.stem.removeprefix("iter_")) for p in files)
    if not have:
        raise SystemExit(f"{run_dir}/samples holds no iter_*.txt yet")
    points = {"start": have[0]}
    if have[-1] >= iters / 2:
        points["middle"] = min(have, key=lambda k: (abs(k - iters / 2), k))
    return {**points, "end": have[-1]}


def samples_at(run_dir: Path, iteration: int, k: int) -> list[str]:
    return (run_dir / "samples" / f"iter_{iteration}.txt").read_text().splitlines()[:k]


def final_scores(
    run_dir: Path, ckpt: Path | None, n: int, seed: int, cpu_time: bool = False
) -> dict:
    """A checkpoint's argmax samples (the newest unless ``ckpt``), raw and averaged, and the
    5-gram model's at T = 1, each scored against the run's corpus, with the floor and samples
    per second (models loaded and fit beforehand; each warmed up, then timed in rotated rounds,
    ``timing.py``; wall time, or this process's CPU time with ``cpu_time``), also as a ratio
    against the raw weights."""
    prepared = run_corpus(run_dir)
    scorer = Scorer.from_prepared(prepared, max(ORDERS), progress=False)
    kn5 = baseline_sampler("kn5", prepared)
    ckpt = resolve_checkpoint(ckpt or run_dir)  # one for both, while training goes on
    generators = {
        name: load_generator(ckpt, "cpu", raw=name == "raw")[0] for name in ("raw", "ema")
    }
    writers = {
        **{
            name: partial(sample_text, g, prepared.vocab, n, seed=seed)
            for name, g in generators.items()
        },
        "kn5": partial(kn5.lines, prepared.vocab, n, 1.0, seed),
    }
    calls = {name: partial(_lines, write) for name, write in writers.items()}
    clock = time.process_time if cpu_time else time.perf_counter
    seconds = interleaved_minimum(calls, SPEED_ROUNDS, clock)
    target = Target(run=run_dir)
    out: dict = {"checkpoint": ckpt.name, "clock": "CPU time" if cpu_time else "wall"}
    for name, call in calls.items():
        lines = call()
        report = score_lines(lines, target, n=n, max_n=max(ORDERS), seed=seed, scorer=scorer)
        speed = {"samples_per_s": n / seconds[name], "speed_vs_raw": seconds["raw"] / seconds[name]}
        out[name] = {**speed, "examples": lines[:3], **report}
    for name, generator in generators.items():
        out[name].update(top_probability(generator, n, seed))
    return out


def _lines(write) -> list[str]:
    return [line for batch in write() for line in batch]


@torch.no_grad()
def top_probability(generator: torch.nn.Module, n: int, seed: int) -> dict:
    """How sure the generator is: its largest softmax probability per position, over ``n``
    noise vectors (why sampling at a temperature barely moves a WGAN text generator)."""
    noise = torch.Generator().manual_seed(seed)
    top = generator(generator.sample_noise(n, torch.device("cpu"), generator=noise)).amax(dim=1)
    return {
        "top_prob_mean": top.mean().item(),
        "top_prob_over_0.99": (top > 0.99).float().mean().item(),
    }


def scores_table(scores: dict) -> str:
    lines = [
        "| measure | GAN (raw) | GAN (EMA) | KN 5-gram | real lines (floor) |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, title in MEASURES:
        cells = [_fmt(scores[s].get(key)) for s in ("raw", "ema", "kn5")]
        lines.append(
            f"| {title} | " + " | ".join(cells) + f" | {_fmt(scores['raw'].get('floor_' + key))} |"
        )
    for key, title in TOP_PROB.items():
        cells = " | ".join(_fmt(scores[s][key]) for s in ("raw", "ema"))
        lines.append(f"| generator's softmax: {title} | {cells} | | |")
    speeds = [f"{scores[s]['samples_per_s']:,.0f}" for s in ("raw", "ema", "kn5")]
    lines.append(f"| samples/s (one thread, {scores['clock']}) | " + " | ".join(speeds) + " | |")
    ratios = [f"{scores[s]['speed_vs_raw']:.2f}×" for s in ("raw", "ema", "kn5")]
    lines.append("| speed against the raw weights | " + " | ".join(ratios) + " | |")
    return "\n".join(lines)


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def report(args: argparse.Namespace) -> tuple[str, dict]:
    run_dir, n, seed = args.run, args.n, args.seed
    config = RunConfig.load(run_dir / "config.json")
    rows = curve(run_dir, args.every)
    points = sample_points(run_dir, config.train.iters)
    samples = {name: samples_at(run_dir, it, args.show) for name, it in points.items()}
    scores = final_scores(run_dir, args.checkpoint, n, seed, args.cpu_time)
    last = rows[-1]
    text = [
        f"Run {run_dir.name}: iteration {last['iter']:,} of {config.train.iters:,}, "
        f"{last['time'] / 3600:.2f} wall hours; "
        f"textgan {textgan.__version__}, torch {torch.__version__}.",
        "",
        curve_table(rows),
        "",
        f"Checkpoint {scores['checkpoint']}, {n} argmax samples (seed {seed}), every measure:",
        "",
        scores_table(scores),
    ]
    for name, it in points.items():
        text += [
            "",
            f"{name} (iteration {it:,}, the weight average):",
            "",
            "```",
            *samples[name],
            "```",
        ]
    data = {"curve": rows, "sample_points": points, "samples": samples, "scores": scores}
    return "\n".join(text) + "\n", data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--out", type=Path, default=Path("runs/report"))
    ap.add_argument("-n", type=int, default=640, help="samples scored (the paper's 640)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--show", type=int, default=20, help="samples shown at each point")
    ap.add_argument("--checkpoint", type=Path, help="score this checkpoint [the newest]")
    ap.add_argument("--every", type=int, default=1000, help="iterations between curve rows")
    ap.add_argument("--cpu-time", action="store_true", help="time samplers by CPU, not wall, time")
    args = ap.parse_args()
    torch.set_num_threads(1)
    text, data = report(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.md").write_text(text)
    (args.out / "report.json").write_text(json.dumps(data, indent=1) + "\n")
    print(text)


if __name__ == "__main__":
    main()
