"""Seconds per training iteration of each network variant of the registries against the paper
networks, at a preset's sizes, all in one process (``timing.py``: one warm-up each, then
rotated rounds, the minimum).

Each entry is a ``Trainer`` of the preset's recipe with other networks (``--critic``,
``--generator``) or, for the length-agnostic pair, with rows cut to a curriculum's length; one
call is ``--iters`` iterations (``critic_iters`` critic steps and a generator step each).
Synthetic ids stand in for a corpus (timing does not depend on the text).

    OMP_NUM_THREADS=1 python benchmarks/bench_variants.py --preset small --cpu-time
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch
from timing import interleaved_minimum

from textgan.config import PRESETS, RunConfig, TrainConfig, build
from textgan.corpus import CorpusConfig
from textgan.nn.lipschitz import LipschitzConfig
from textgan.nn.networks import ModelConfig
from textgan.training.trainer import Trainer

# name: (model fields, train fields) over the preset's.
VARIANTS: dict[str, tuple[dict, dict]] = {
    "paper": ({}, {}),
    "critic windows": ({"critic": "windows"}, {}),
    "critic attn": ({"critic": "attn"}, {}),
    "generator attn": ({"generator": "attn"}, {}),
    "attn + attn": ({"generator": "attn", "critic": "attn"}, {}),
    "any-length + any-length": ({"generator": "any-length", "critic": "any-length"}, {}),
    "any-length, rows of 16": (
        {"generator": "any-length", "critic": "any-length"},
        {"curriculum": "16:0.5"},
    ),
    "any-length, rows of 8": (
        {"generator": "any-length", "critic": "any-length"},
        {"curriculum": "8:0.5"},
    ),
}


def make_trainer(preset: str, model: dict, train: dict, vocab: int, precision: str) -> Trainer:
    layers = PRESETS[preset]
    model_cfg = ModelConfig(vocab_size=vocab, seq_len=32, **{**layers["model"], **model})
    fields = {**layers["train"], **train, "device": "cpu", "precision": precision, "seed": 0}
    train_cfg = build(TrainConfig, fields, "bench_variants")
    config = RunConfig(CorpusConfig(), model_cfg, LipschitzConfig(), train_cfg)
    ids = np.random.default_rng(0).integers(2, vocab, (10_000, 32)).astype(np.uint8)
    return Trainer(config, ids, torch.device("cpu"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--vocab", type=int, default=256, help="symbols (Billion Word: 256)")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--iters", type=int, default=3, help="iterations per timed call")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--cpu-time", action="store_true", help="this process's CPU time")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    trainers = {
        name: make_trainer(args.preset, model, train, args.vocab, args.precision)
        for name, (model, train) in VARIANTS.items()
    }

    def call(trainer: Trainer):
        return lambda: [trainer.step() for _ in range(args.iters)]

    clock = time.process_time if args.cpu_time else time.perf_counter
    load = os.getloadavg()
    best = interleaved_minimum({k: call(t) for k, t in trainers.items()}, args.rounds, clock)
    print(
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s), precision {trainers['paper'].fast.precision}, "
        f"{'CPU' if args.cpu_time else 'wall'} time, load average {load[0]:.2f} before and "
        f"{os.getloadavg()[0]:.2f} after"
    )
    print(f"| variant ({args.preset} sizes) | s / iteration | × paper |")
    print("|---|---|---|")
    for name, seconds in best.items():
        per_iter = seconds / args.iters
        print(f"| {name} | {per_iter:.4f} | {seconds / best['paper']:.2f} |")


if __name__ == "__main__":
    main()
