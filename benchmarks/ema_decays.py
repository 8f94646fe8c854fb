"""Which EMA decay? Several weight averages of one training run, scored side by side.

A weight average never feeds back into training, so one run can carry several: this trains an
ordinary run (``textgan.training.loop.train``, a normal run folder with the default average) and,
through its hook, keeps one more average per ``--decays`` value, updated after every generator step
exactly as the trainer updates its own (``textgan.training.trainer.update_ema``, the same warm-up
ramp). At every evaluation each average is scored on the run's fixed evaluation noise, so the
columns differ only by the decay. The run's own decay is also tracked by the hook and checked equal
to the trainer's average at each evaluation, which shows the hook updates at the trainer's steps.
Writes ``OUT/ema_decays.json`` and ``OUT/ema_decays.md``.

    OMP_NUM_THREADS=1 python benchmarks/ema_decays.py --seed 1 --iters 1500 --out runs/ema
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import torch
from shared_corpus import GBW

from textgan.config import layered_config
from textgan.training.evaluation import argmax_ids, make_evaluator
from textgan.training.loop import train
from textgan.training.setup import resolve_run_config
from textgan.training.trainer import Trainer, ema_decay_at, update_ema


class Averages:
    """The hook: one weight average per decay, scored at every evaluation."""

    def __init__(self, decays: list[float], config, prepared, out: Path) -> None:
        if not config.train.ema_decay or min(decays) < ema_decay_at(1.0, 0):
            raise SystemExit("the run needs its own average on, and every decay ≥ 0.1")
        self.decays, self.config, self.out = decays, config, out
        self.evaluator = make_evaluator(config, prepared, progress=False)
        self.averages: dict[float, torch.nn.Module] = {}
        self.rows: list[dict] = []

    def __call__(self, trainer: Trainer, k: int) -> None:
        if k == 1:
            # The first update of every decay ≥ 0.1 is the ramp's 0.1, which the trainer's own
            # average has just applied to the initial weights: each average starts from it.
            self.averages = {d: copy.deepcopy(trainer.ema) for d in self.decays}
        else:
            for decay, avg in self.averages.items():
                update_ema(avg, trainer.generator, ema_decay_at(decay, k - 1))
        if k % self.config.train.eval_every == 0 or k == self.config.train.iters:
            self._evaluate(trainer, k)

    def _evaluate(self, trainer: Trainer, k: int) -> None:
        own = self.averages.get(self.config.train.ema_decay)
        if own is not None:
            for a, b in zip(own.parameters(), trainer.ema.parameters(), strict=True):
                assert torch.equal(a, b), "the hook's average left the trainer's"
        scores = self._scores(trainer.generator, trainer)
        row = {"iter": k, **{f"floor_js{n}": scores[f"floor_js{n}"] for n in range(1, 5)}}
        row.update({f"raw_js{n}": scores[f"js{n}"] for n in range(1, 5)})
        for decay, avg in self.averages.items():
            scores = self._scores(avg, trainer)
            row.update({f"ema{decay:g}_js{n}": scores[f"js{n}"] for n in range(1, 5)})
        self.rows.append(row)
        print(json.dumps(row), flush=True)
        (self.out / "ema_decays.json").write_text(json.dumps(self.rows, indent=1) + "\n")
        (self.out / "ema_decays.md").write_text(table(self.rows, self.decays))

    def _scores(self, generator: torch.nn.Module, trainer: Trainer) -> dict:
        return self.evaluator(argmax_ids(generator, self.config, trainer.device))


def table(rows: list[dict], decays: list[float]) -> str:
    names = ["raw", *(f"ema{d:g}" for d in decays)]
    head = "| iteration | " + " | ".join(f"JS-4 {n}" for n in names) + " |"
    lines = [head, "|---:|" + "---:|" * len(names)]
    lines.append(f"| floor | {rows[0]['floor_js4']:.3f} |" + " |" * (len(names) - 1))
    for row in rows:
        cells = " | ".join(f"{row[f'{n}_js4']:.3f}" for n in names)
        lines.append(f"| {row['iter']:,} | {cells} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--corpus", default=str(GBW))
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--iters", type=int, default=1500)
    ap.add_argument("--eval-every", type=int, default=250)
    # Decays above the warm-up ramp act alike (it is min(d, ramp)); the ramp is 0.994 at 1,500.
    ap.add_argument("--decays", default="0.9,0.95,0.98,0.99,0.999")
    ap.add_argument("--out", type=Path, default=Path("runs/ema-decays"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    overrides = {
        "corpus": {"corpus": str(args.corpus), "data_dir": args.data_dir},
        "train": {
            "seed": args.seed,
            "iters": args.iters,
            "eval_every": args.eval_every,
            "ckpt_every": args.eval_every,
            "run_dir": str(args.out / f"{args.preset}-seed{args.seed}"),
        },
    }
    config, prepared = resolve_run_config(layered_config(args.preset, None, overrides), False)
    decays = [float(d) for d in args.decays.split(",")]
    hook = Averages(decays, config, prepared, args.out)
    train(config, prepared, progress=False, hooks=[hook])


if __name__ == "__main__":
    main()
