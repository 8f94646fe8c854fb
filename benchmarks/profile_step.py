"""Where textgan's training step spends its time: torch.profiler over a few steps.

    python benchmarks/profile_step.py --preset small
    python benchmarks/profile_step.py --preset paper --device cuda --compile-mode reduce-overhead

Prints the operators (and, on CUDA, the kernels) that take the most time over ``--steps``
critic steps and one generator step, after warm-up, and the wall time per critic step with and
without the profiler.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from textgan.config import PRESETS, RunConfig, TrainConfig
from textgan.corpus import CorpusConfig
from textgan.nn import fast
from textgan.nn.lipschitz import LipschitzConfig
from textgan.nn.networks import ModelConfig
from textgan.training.trainer import Trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--preset", default="paper", choices=sorted(PRESETS))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=False)
    ap.add_argument("--compile-mode", default=None)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--vocab", type=int, default=256)
    ap.add_argument("--rows", type=int, default=25)
    args = ap.parse_args()
    device = torch.device(args.device)
    if args.compile_mode:
        fast.COMPILE_OPTIONS[device.type] = {"mode": args.compile_mode}
        args.compile = True
    values = PRESETS[args.preset]
    train = {**values["train"], "preset": args.preset, "device": str(device)}
    train.update(precision=args.precision, compile=args.compile)
    model = ModelConfig(vocab_size=args.vocab, **values["model"])
    config = RunConfig(CorpusConfig(), model, LipschitzConfig(), TrainConfig(**train))
    ids = np.random.default_rng(0).integers(2, args.vocab, size=(50_000, model.seq_len))
    trainer = Trainer(config, ids.astype(np.uint8), device)

    def steps() -> None:
        for _ in range(args.steps):
            trainer.critic_step()
        trainer.generator_step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(3):
        steps()
    start = time.perf_counter()
    steps()
    plain = time.perf_counter() - start
    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        steps()
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=sort, row_limit=args.rows, max_name_column_width=60))
    events = prof.key_averages()
    if device.type == "cuda":
        busy = sum(e.self_device_time_total for e in events) / 1e3
        print(f"device busy: {busy / (args.steps + 1):.3f} ms per step (kernels, summed)")
    print(
        f"wall: {plain * 1e3 / (args.steps + 1):.3f} ms per step without the profiler "
        f"({args.steps} critic steps + 1 generator step, {trainer.fast.precision}, "
        f"compile {args.compile} {fast.COMPILE_OPTIONS.get(device.type)})"
    )


if __name__ == "__main__":
    main()
