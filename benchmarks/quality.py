"""Does the fast path train as well as the fp32 path? JS-4 after the same number of iterations.

Trains the same preset on the same corpus with the same seed in each ``--precisions`` (the
first is the reference), plus the reference precision with other ``--noise-seeds`` to show
how much JS-4 moves from seed to seed alone. Prints JS-1..4 at every evaluation and the wall
time of each run.

    python benchmarks/quality.py --iters 400                     # small, gbw held-out shards
    python benchmarks/quality.py --preset tiny --iters 200 --corpus pydocs
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from shared_corpus import GBW

from textgan.config import layered_config
from textgan.training.loop import train
from textgan.training.setup import resolve_run_config


def run(args: argparse.Namespace, precision: str, seed: int, root: Path) -> dict:
    name = f"{args.preset}-{precision}-seed{seed}"
    overrides = {
        "corpus": {"corpus": args.corpus, "data_dir": args.data_dir},
        "train": {
            "iters": args.iters,
            "seed": seed,
            "precision": precision,
            "eval_every": args.eval_every,
            "ckpt_every": args.iters,
            "run_dir": str(root / name),
        },
    }
    config, prepared = resolve_run_config(layered_config(args.preset, None, overrides), False)
    start = time.perf_counter()
    train(config, prepared, progress=False)
    seconds = time.perf_counter() - start
    rows = [json.loads(line) for line in (root / name / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "js4" in r]
    return {"name": name, "seconds": seconds, "evals": evals}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--corpus", default=str(GBW))
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--iters", type=int, default=400)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noise-seeds", default="1", help="extra seeds of the reference precision")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    precisions = args.precisions.split(",")
    plan = [(p, args.seed) for p in precisions]
    plan += [(precisions[0], int(s)) for s in args.noise_seeds.split(",") if s]
    with tempfile.TemporaryDirectory() as tmp:
        results = [run(args, p, s, Path(tmp)) for p, s in plan]
    for r in results:
        curve = "  ".join(f"{e['iter']}: {e['js4']:.4f}" for e in r["evals"])
        print(f"{r['name']:24s} {r['seconds']:7.1f} s   JS-4 by iteration  {curve}")
    last = {r["name"]: r["evals"][-1] for r in results}
    print("final JS-1..4:")
    for name, e in last.items():
        print(f"  {name:24s} " + " ".join(f"{e[f'js{n}']:.4f}" for n in range(1, 5)))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
