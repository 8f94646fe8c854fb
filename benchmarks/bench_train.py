"""textgan's training step against the naive yardstick, side by side in one process.

For each preset: seconds per critic step, per generator step and per full iteration
(``critic_iters`` critic steps + one generator step) of ``benchmarks/naive_step.py`` (fp32,
eager, double backward) and of ``textgan.training.loop.Trainer`` (the real training step, with its
``--precision`` and ``--compile``), the ratio of each, and the fraction of the machine's
measured peak that textgan's step reaches (its FLOPs counted by
``torch.utils.flop_counter.FlopCounterMode``, the peak measured in the same run with a large
``torch.matmul`` and a large convolution, fp32 and bf16). Calls alternate between the two
implementations, so a burst of load from other processes hits both; the minimum over repeats
is reported.

    python benchmarks/bench_train.py                                  # paper, small, tiny
    python benchmarks/bench_train.py --presets small --repeats 10 --iter-repeats 3
    python benchmarks/bench_train.py --presets paper --device cuda --json out.json

Synthetic ids stand in for a corpus (timing does not depend on the text); ``--vocab`` sets
the vocabulary size (256: the Billion Word character vocabulary at ``max_vocab`` 256).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from naive_step import NaiveConfig, NaiveStep

from textgan.config import PRESETS, RunConfig, TrainConfig
from textgan.corpus import CorpusConfig
from textgan.nn.lipschitz import LipschitzConfig
from textgan.nn.networks import ModelConfig
from textgan.training.meter import Meter
from textgan.training.trainer import Trainer

PAPER_ITERS = 200_000
CLOCK = time.perf_counter  # --cpu-time: time.process_time


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_peak(device: torch.device, dtype: torch.dtype) -> dict[str, float]:
    """GFLOP/s of a large matmul and of a large convolution (the step's main product)."""
    n = 8192 if device.type == "cuda" else 2048
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    x = torch.randn(256 if device.type == "cuda" else 64, 512, 128, device=device, dtype=dtype)
    w = torch.randn(512, 512, 5, device=device, dtype=dtype)
    conv_flops = 2 * x.shape[0] * x.shape[2] * 512 * 512 * 5
    out = {}
    for name, fn, flops in (
        ("matmul", lambda: a @ b, 2 * n**3),
        ("conv1d", lambda: F.conv1d(x, w, padding=2), conv_flops),
    ):
        best = min_time(fn, device, repeats=5)
        out[name] = flops / best / 1e9
    return out


def min_time(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    fn()
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        start = CLOCK()
        fn()
        sync(device)
        best = min(best, CLOCK() - start)
    return best


def count_flops(fn: Callable[[], object]) -> float | None:
    """FLOPs of one call (None where the counter cannot follow it, e.g. double backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with FlopCounterMode(display=False) as counter:
            fn()
    except RuntimeError:
        return None
    return float(counter.get_total_flops())


class Pair:
    """The naive step and textgan's Trainer on the same sizes and the same synthetic ids."""

    def __init__(self, preset: str, args: argparse.Namespace, device: torch.device) -> None:
        values = PRESETS[preset]
        train = {
            **values["train"],
            "preset": preset,
            "device": str(device),
            "precision": args.precision,
            "compile": args.compile,
        }
        model = ModelConfig(vocab_size=args.vocab, seq_len=args.seq_len, **values["model"])
        self.config = RunConfig(CorpusConfig(), model, LipschitzConfig(), TrainConfig(**train))
        t = self.config.train
        rng = np.random.default_rng(0)
        ids = rng.integers(2, args.vocab, size=(50_000, args.seq_len), dtype=np.int64)
        self.ids = ids.astype(np.uint8 if args.vocab <= 256 else np.uint16)
        self.trainer = Trainer(self.config, self.ids, device)
        self.naive = NaiveStep(
            NaiveConfig(
                vocab_size=args.vocab,
                seq_len=args.seq_len,
                dim=model.dim,
                blocks=model.blocks,
                kernel=model.kernel,
                noise_dim=model.noise_dim,
                batch_size=t.batch_size,
                critic_iters=t.critic_iters,
                lam=self.config.lipschitz.lam,
                lr=t.lr,
            ),
            device=str(device),
        )
        self.device = device
        self.rng = rng
        self.meter = Meter()

    def real_ids(self) -> torch.Tensor:
        rows = self.rng.integers(0, len(self.ids), size=self.config.train.batch_size)
        return torch.from_numpy(self.ids[rows].astype(np.int64)).to(self.device)

    def calls(self) -> dict[str, dict[str, Callable[[], object]]]:
        n = self.config.train.critic_iters
        return {
            "critic step": {
                "naive": lambda: self.naive.critic_step(self.real_ids()),
                "textgan": self.trainer.critic_step,
            },
            "generator step": {
                "naive": self.naive.generator_step,
                "textgan": self.trainer.generator_step,
            },
            "full iteration": {
                "naive": lambda: self.naive.iteration([self.real_ids() for _ in range(n)]),
                "textgan": lambda: self.trainer.step(self.meter),
            },
        }


def bench_preset(preset: str, args: argparse.Namespace, device: torch.device) -> dict:
    pair = Pair(preset, args, device)
    t = pair.config.train
    cfg = pair.config.model
    print(
        f"\n== {preset}: dim {cfg.dim}, blocks {cfg.blocks}, vocab {cfg.vocab_size}, "
        f"batch {t.batch_size}, critic_iters {t.critic_iters}, textgan precision "
        f"{pair.trainer.fast.precision}, compile {t.compile}",
        flush=True,
    )
    result: dict = {"preset": preset, "precision": pair.trainer.fast.precision}
    for what, impls in pair.calls().items():
        repeats = args.iter_repeats if what == "full iteration" else args.repeats
        if preset == "paper" and what == "full iteration":
            repeats = args.paper_iter_repeats
        for fn in impls.values():  # warm-up (and compilation)
            fn()
            sync(device)
        best = dict.fromkeys(impls, float("inf"))
        for _ in range(repeats):
            for name, fn in impls.items():
                start = CLOCK()
                fn()
                sync(device)
                best[name] = min(best[name], CLOCK() - start)
        ratio = best["naive"] / best["textgan"]
        result[what] = {**best, "ratio": ratio, "repeats": repeats}
        print(
            f"  {what:15s} naive {best['naive']:9.4f} s   textgan {best['textgan']:9.4f} s   "
            f"ratio {ratio:5.2f}x   (min of {repeats})",
            flush=True,
        )
    # FLOPs of the same step run eagerly (the counter does not follow compiled code).
    eager = Trainer(replace(pair.config, train=replace(t, compile=False)), pair.ids, device)
    critic_flops = count_flops(eager.critic_step)
    gen_flops = count_flops(eager.generator_step)
    del eager
    if critic_flops is not None and gen_flops is not None:
        flops = t.critic_iters * critic_flops + gen_flops
        rate = flops / result["full iteration"]["textgan"] / 1e9
        result["iteration_gflop"] = flops / 1e9
        result["textgan_gflops"] = rate
        print(f"  textgan: {flops / 1e9:.1f} GFLOP per iteration, {rate:.1f} GFLOP/s achieved")
    if preset == "paper":
        hours = result["full iteration"]["textgan"] * PAPER_ITERS / 3600
        naive_hours = result["full iteration"]["naive"] * PAPER_ITERS / 3600
        result["projected_hours_200k"] = hours
        result["naive_projected_hours_200k"] = naive_hours
        print(
            f"  projected {PAPER_ITERS:,} iterations: textgan {hours:.2f} h, "
            f"naive {naive_hours:.2f} h (step time only)"
        )
    return result


def overhead(preset: str, args: argparse.Namespace, device: torch.device) -> dict:
    """Share of training time spent in evaluation and checkpointing at the preset's intervals,
    measured with the training loop's own functions on the built-in pydocs corpus."""
    import tempfile

    from textgan.corpus import prepare
    from textgan.files.rundir import RunDir
    from textgan.training.evaluation import evaluate, make_evaluator
    from textgan.training.loop import RunOutput

    with tempfile.TemporaryDirectory() as tmp:
        corpus = CorpusConfig(corpus="pydocs", data_dir=str(Path(tmp) / "data"))
        prepared = prepare(corpus, progress=False)
        values = PRESETS[preset]
        train = {**values["train"], "preset": preset, "precision": args.precision}
        train.update(compile=args.compile, device=str(device))
        model = ModelConfig(
            vocab_size=len(prepared.vocab), seq_len=prepared.seq_len, **values["model"]
        )
        t = TrainConfig(**train)
        t = TrainConfig(**{**train, "eval_samples": min(t.eval_samples, len(prepared.heldout))})
        config = RunConfig(corpus, model, LipschitzConfig(), t, prepared.fingerprint)
        trainer = Trainer(config, prepared.train, device)
        evaluator = make_evaluator(config, prepared, progress=False)
        output = RunOutput(RunDir.create(Path(tmp) / "run"), progress=False)
        output.config(config, prepared.vocab)
        meter = Meter()
        step = min_time(lambda: trainer.step(meter), device, repeats=args.iter_repeats)
        evaluate = min_time(lambda: evaluate(trainer, evaluator, config), device, repeats=3)
        save = min_time(lambda: output.checkpoint(trainer, t.keep), device, repeats=3)
    share = (evaluate / t.eval_every + save / t.ckpt_every) / step
    print(
        f"  overhead at {preset}: iteration {step:.4f} s, evaluation {evaluate:.3f} s every "
        f"{t.eval_every}, checkpoint {save:.3f} s every {t.ckpt_every}: {share:.1%} of training"
    )
    return {"iteration": step, "evaluate": evaluate, "checkpoint": save, "share": share}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--presets", default="paper,small,tiny")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "tf32", "bf16"])
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=False)
    ap.add_argument(
        "--compile-mode", default=None, help="torch.compile mode (reduce-overhead: CUDA graphs)"
    )
    ap.add_argument("--repeats", type=int, default=3, help="critic / generator step repeats")
    ap.add_argument("--iter-repeats", type=int, default=3, help="full-iteration repeats")
    ap.add_argument(
        "--paper-iter-repeats", type=int, default=1, help="full-iteration repeats at paper"
    )
    ap.add_argument("--vocab", type=int, default=256)
    ap.add_argument("--seq-len", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument(
        "--overhead", action="store_true", help="also time evaluation + checkpoints (pydocs)"
    )
    ap.add_argument(
        "--cpu-time",
        action="store_true",
        help="time this process's CPU seconds, not wall seconds (CPU only; steady under other "
        "processes' load; use with --threads 1)",
    )
    args = ap.parse_args()
    if args.cpu_time:
        if args.device != "cpu":
            ap.error("--cpu-time measures CPU work; GPU kernels run asynchronously")
        global CLOCK
        CLOCK = time.process_time
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.compile_mode:
        from textgan.nn import fast

        fast.COMPILE_OPTIONS[device.type] = {"mode": args.compile_mode}
    info = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
    }
    print(" | ".join(f"{k} {v}" for k, v in info.items()), flush=True)
    peaks = {
        str(dtype).split(".")[-1]: measure_peak(device, dtype)
        for dtype in (torch.float32, torch.bfloat16)
    }
    for dtype, rates in peaks.items():
        print(f"peak {dtype}: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in rates.items()))
    results = []
    for preset in args.presets.split(","):
        results.append(bench_preset(preset, args, device))
        if args.overhead:
            results[-1]["overhead"] = overhead(preset, args, device)
    for dtype in (torch.float32, torch.bfloat16):  # again: a quieter moment gives the true peak
        name = str(dtype).split(".")[-1]
        again = measure_peak(device, dtype)
        peaks[name] = {k: max(v, again[k]) for k, v in peaks[name].items()}
        print(
            f"peak {name} (best of start and end): "
            + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peaks[name].items())
        )
    print("\nfraction of the measured peaks reached by textgan's full iteration:")
    for r in results:
        if "textgan_gflops" in r:
            parts = [
                f"{r['textgan_gflops'] / rate:.0%} of {dtype} {kind}"
                for dtype, rates in peaks.items()
                for kind, rate in rates.items()
            ]
            print(f"  {r['preset']:6s} ({r['precision']}): " + ", ".join(parts))
    if args.json:
        payload = {"info": info, "peaks": peaks, "args": vars(args), "results": results}
        args.json.write_text(json.dumps(payload, indent=2, default=str))


if __name__ == "__main__":
    main()
