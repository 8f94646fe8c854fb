"""Samples per second of generators and of the 5-gram baseline, all timed in one process:
``-n`` argmax samples decoded to strings (``textgan.generation.sampling.sample_text``; the
baseline's ``lines`` at T = 1), each source warmed up, then timed in rotated rounds
(``timing.py``); each source's ratio is against the first source of the same run.

A preset's generator (its shape, at a random initialisation: no run needed) is timed twice, as
"raw" and "EMA", two copies of the same weights: the same work, so any gap between the two is
the measurement's own noise. ``--run`` adds a run's newest checkpoint, its trained weights and
their average (as ``run_report.py`` times them).

    OMP_NUM_THREADS=1 python benchmarks/sample_speed.py --presets small-v1,small \
        --baseline kn5 --cpu-time
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch
from shared_corpus import GBW
from timing import interleaved_minimum

import textgan
from textgan.config import PRESETS, ModelConfig
from textgan.generation.baseline import baseline_sampler
from textgan.generation.sampling import load_generator, sample_text
from textgan.nn.networks import Generator
from textgan.vocab import Vocab


def preset_generator(preset: str, vocab: Vocab, seq_len: int, seed: int) -> Generator:
    """A generator of ``preset``'s shape for this vocabulary, at a random initialisation."""
    torch.manual_seed(seed)
    model = ModelConfig(vocab_size=len(vocab), seq_len=seq_len, **PRESETS[preset]["model"])
    return Generator(model).eval()


def writers(args: argparse.Namespace) -> dict:
    """Each source's call: write ``args.n`` samples, as strings."""
    prepared = textgan.prepare(str(args.corpus), data_dir=str(args.data_dir))
    vocab = prepared.vocab

    def write(generator: Generator, vocab: Vocab):
        return lambda: [line for b in sample_text(generator, vocab, args.n, seed=0) for line in b]

    calls = {}
    for preset in args.presets:
        generator = preset_generator(preset, vocab, prepared.seq_len, seed=0)
        calls[f"{preset} raw"] = write(generator, vocab)
        calls[f"{preset} EMA"] = write(copy.deepcopy(generator), vocab)
    for run in args.run:
        for kind in ("raw", "EMA"):
            generator, run_vocab, _ = load_generator(run, "cpu", raw=kind == "raw")
            calls[f"{run.name} {kind}"] = write(generator, run_vocab)
    if args.baseline:
        sampler = baseline_sampler(args.baseline, prepared)
        calls[args.baseline] = lambda: [
            line for batch in sampler.lines(vocab, args.n, 1.0, 0) for line in batch
        ]
    return calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--presets", type=lambda s: s.split(","), default=["small-v1", "small"])
    ap.add_argument("--run", type=Path, action="append", default=[], help="a run folder")
    ap.add_argument("--baseline", choices=["kn5"], help="also time this baseline's sampler")
    ap.add_argument("--corpus", type=Path, default=GBW, help="its vocabulary and the baseline")
    ap.add_argument("--data-dir", type=Path, default=Path("data"))
    ap.add_argument("-n", type=int, default=640, help="samples a call (run_report.py's 640)")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cpu-time", action="store_true", help="time this process's CPU time")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    calls = writers(args)
    clock = time.process_time if args.cpu_time else time.perf_counter
    seconds = interleaved_minimum(calls, args.rounds, clock)
    first = next(iter(seconds))
    print(
        f"{args.n} samples a call, {args.threads} thread(s), {'CPU' if args.cpu_time else 'wall'} "
        f"time, min of {args.rounds} rotated rounds after a warm-up; torch {torch.__version__}"
    )
    print(f"| source | samples/s | against {first} |\n|---|---:|---:|")
    rows = {}
    for name, s in seconds.items():
        rows[name] = {"seconds": s, "samples_per_s": args.n / s, "ratio": seconds[first] / s}
        print(f"| {name} | {args.n / s:,.0f} | {rows[name]['ratio']:.2f}× |")
    if args.json:
        head = {"n": args.n, "rounds": args.rounds, "cpu_time": args.cpu_time}
        args.json.write_text(json.dumps({**head, **rows}, indent=1))


if __name__ == "__main__":
    main()
