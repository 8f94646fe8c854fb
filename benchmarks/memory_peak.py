"""Peak resident memory of CPU training beside textgan.nn.memory's estimate.

One process per size: a Trainer built at the given sizes (random ids, one thread) runs
``--iters`` iterations of two critic steps; the peak resident memory above what the process
held before the Trainer is printed beside the estimate, as one JSON line per size::

    python benchmarks/memory_peak.py 2000,64,1,64,100 32,512,5,64,100

Each size is SEQ_LEN,DIM,BLOCKS,BATCH,VOCAB. ``tests/test_memory.py`` runs it for two sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys


def measure(length: int, dim: int, blocks: int, batch: int, vocab: int, iters: int) -> dict:
    """This process's peak above its memory before the Trainer, and the estimate."""
    import numpy as np
    import torch

    from textgan.config import LipschitzConfig, ModelConfig, RunConfig, TrainConfig
    from textgan.corpus import CorpusConfig
    from textgan.nn import memory
    from textgan.training.trainer import Trainer
    from textgan.vocab import id_dtype

    torch.set_num_threads(1)
    model = ModelConfig(vocab_size=vocab, seq_len=length, dim=dim, blocks=blocks)
    train = TrainConfig(preset="tiny", batch_size=batch, critic_iters=2, device="cpu")
    config = RunConfig(CorpusConfig(seq_len=length), model, LipschitzConfig(), train)
    ids = np.random.default_rng(0).integers(0, vocab, size=(200, length), dtype=id_dtype(vocab))
    with open("/proc/self/statm") as fh:
        before = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    trainer = Trainer(config, ids, torch.device("cpu"))
    for _ in range(iters):
        trainer.step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    estimate = memory.estimate(model, batch, ema=True).total
    sizes = {"seq_len": length, "dim": dim, "blocks": blocks, "batch": batch, "vocab": vocab}
    return {**sizes, "peak_bytes": peak, "estimate_bytes": estimate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sizes", nargs="+", help="SEQ_LEN,DIM,BLOCKS,BATCH,VOCAB")
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    for text in args.sizes:
        if args.in_process:
            sizes = [int(x) for x in text.split(",")]
            print(json.dumps(measure(*sizes, iters=args.iters)), flush=True)
            continue
        # A fresh process per size: the peak is a process's, never lowered.
        command = [sys.executable, __file__, text, "--iters", str(args.iters), "--in-process"]
        subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
