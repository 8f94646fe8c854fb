"""How often a finished torchrun job fails at its exit: the same small job run many times.

A one-process run of one iteration on ``pydocs`` is made first; each job then resumes it under
``torchrun --standalone --nproc-per-node N`` for one more iteration (``textgan train --resume
RUN --iters K``). A job counts as failed when torchrun exits non-zero or a worker printed
``terminate called`` (how a process aborted at interpreter exit shows itself). Prints one line
per job and a summary; exits 1 when any job failed.

    python benchmarks/torchrun_exits.py --jobs 30
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The tiny preset, smaller still: the job's cost is its start and its exit, not its iterations.
SMALL = ["--preset", "tiny", "--dim", "16", "--blocks", "1", "--batch-size", "64",
         "--eval-samples", "64", "--device", "cpu", "--precision", "fp32"]  # fmt: skip


def _env() -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    return env


def first_run(work: Path) -> Path:
    """A run of one iteration by one process, for the jobs to resume."""
    run = work / "run"
    corpus = ["--corpus", "pydocs", "--data-dir", str(work / "data")]
    cmd = [sys.executable, "-m", "textgan", "train", *corpus, *SMALL, "--iters", "1"]
    cmd += ["--run-dir", str(run), "--no-progress"]
    subprocess.run(cmd, env=_env(), check=True, capture_output=True)
    return run


def job(run: Path, iters: int, nproc: int) -> tuple[int, bool, float]:
    """One torchrun job: its exit status, whether a worker aborted, its wall seconds."""
    launch = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)]
    cmd = [sys.executable, *launch, "-m", "textgan", "train", "--resume", str(run)]
    cmd += ["--iters", str(iters)]
    start = time.perf_counter()
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    aborted = "terminate called" in done.stderr + done.stdout
    return done.returncode, aborted, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=30, help="Jobs to run one after another.")
    parser.add_argument("--nproc", type=int, default=2, help="Processes per job.")
    parser.add_argument("--work", help="Folder for the run and the corpus cache [a temporary].")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = first_run(Path(args.work or tmp))
        failed, seconds = [], []
        for k in range(1, args.jobs + 1):
            code, aborted, wall = job(run, 1 + k, args.nproc)
            seconds.append(wall)
            if code != 0 or aborted:
                failed.append(k)
            print(f"job {k:3d}: exit {code}, {'aborted' if aborted else 'clean'}, {wall:.1f} s")
    print(
        f"{args.jobs} torchrun jobs of {args.nproc} processes: {len(failed)} failed exits"
        f"{' (jobs ' + ', '.join(map(str, failed)) + ')' if failed else ''}; "
        f"median {statistics.median(seconds):.1f} s per job"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
