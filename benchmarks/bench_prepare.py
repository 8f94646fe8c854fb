"""Time and peak memory of `textgan prepare` against the reference's loader.

The input repeats the two shared One Billion Word shards into a temporary file (never the
repository). Each measurement runs in its own process: time is the work alone (after imports);
memory is the process's peak resident set (ru_maxrss), shown whole and above the floor that both
processes share (Python and NumPy loaded) — the memory the method and its own modules take.

The baseline is the algorithm of the reference's ``load_dataset`` (gan_language.py,
Gulrajani et al. 2017): every line a Python tuple of characters padded with backticks, a
shuffle, a ``collections.Counter`` over all characters, then each line rebuilt as a tuple with
rare characters replaced by 'unk'.

    python benchmarks/bench_prepare.py                  # 10M lines, baseline on 1M
    python benchmarks/bench_prepare.py --lines 2000000 --ref-lines 200000   # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from shared_corpus import GBW, ROOT, SHARDS

TARGETS = {"seconds": 60.0, "peak_gb": 1.5, "speedup": 5.0, "memory_ratio": 10.0}


def build_input(path: Path, n_lines: int) -> None:
    """``n_lines`` lines: the shards over and over, the last copy cut short."""
    lines = b"".join((GBW / s).read_bytes() for s in SHARDS).splitlines(keepends=True)
    whole, rest = divmod(n_lines, len(lines))
    block = b"".join(lines)
    with open(path, "wb") as out:
        for _ in range(whole):
            out.write(block)
        out.write(b"".join(lines[:rest]))


def reference_load(path: Path, max_length: int = 32, max_n_examples: int = 10_000_000):
    """The reference's algorithm (gan_language.py load_dataset), on one file."""
    import collections

    import numpy as np

    lines = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = tuple(line[:-1])
            if len(line) > max_length:
                line = line[:max_length]
            lines.append(line + ("`",) * (max_length - len(line)))
            if len(lines) == max_n_examples:
                break
    np.random.shuffle(lines)
    counts = collections.Counter(char for line in lines for char in line)
    charmap, inv_charmap = {"unk": 0}, ["unk"]
    for char, _ in counts.most_common(2048 - 1):
        if char not in charmap:
            charmap[char] = len(inv_charmap)
            inv_charmap.append(char)
    filtered = [tuple(c if c in charmap else "unk" for c in line) for line in lines]
    return filtered, charmap, inv_charmap


def child(kind: str, path: str, n_lines: int, data_dir: str) -> None:
    import resource

    import numpy.random  # noqa: F401  both methods use it; loaded before the baseline RSS is read

    # The common floor: Python and NumPy. A method's own modules count as its memory.
    before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if kind == "ours":
        from textgan.corpus import CorpusConfig, prepare

        cfg = CorpusConfig(corpus=path, max_lines=n_lines, data_dir=data_dir)
        start = time.perf_counter()
        prepared = prepare(cfg, force=True, progress=False)
        seconds = time.perf_counter() - start
        rows = len(prepared.train) + len(prepared.heldout)
    else:
        start = time.perf_counter()
        filtered, _, _ = reference_load(Path(path), max_n_examples=n_lines)
        seconds = time.perf_counter() - start
        rows = len(filtered)
    print(json.dumps({"seconds": seconds, "rows": rows, "before_mb": before_kb / 1024}))


def measure(kind: str, path: Path, n_lines: int, data_dir: Path) -> dict:
    """Run one measurement in a fresh process; its peak RSS comes from wait4."""
    cmd = [sys.executable, __file__, "--child", kind, str(path), str(n_lines), str(data_dir)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, cwd=ROOT)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{kind} on {n_lines:,} lines failed with status {proc.returncode}")
    result = json.loads(out)
    result["peak_mb"] = usage.ru_maxrss / 1024  # KiB on Linux
    result["work_mb"] = result["peak_mb"] - result["before_mb"]
    if result["rows"] != n_lines:
        raise SystemExit(f"{kind} produced {result['rows']:,} rows, expected {n_lines:,}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=10_000_000)
    parser.add_argument("--ref-lines", type=int, default=1_000_000)
    parser.add_argument("--workdir", default=None, help="Folder for the temporary input.")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, path, n, data_dir = args.child
        child(kind, path, int(n), data_dir)
        return

    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="bench-prepare-") as tmp:
        tmp = Path(tmp)
        big, small = tmp / "big.txt", tmp / "small.txt"
        print(f"building inputs in {tmp} ...", flush=True)
        build_input(big, args.lines)
        build_input(small, args.ref_lines)
        rows = [
            ("textgan prepare", args.lines, measure("ours", big, args.lines, tmp / "data")),
            ("textgan prepare", args.ref_lines, measure("ours", small, args.ref_lines, tmp / "d")),
            ("reference load_dataset", args.ref_lines, measure("ref", small, args.ref_lines, tmp)),
        ]
        size_gb = big.stat().st_size / 1e9

    print(f"\ninput: the shared GBW shards repeated ({size_gb:.2f} GB for {args.lines:,} lines)")
    print("peak RSS: the whole process; work: peak RSS less the RSS of Python and NumPy")
    print("loaded (the same floor for both), i.e. the memory the method and its modules take.\n")
    print(f"{'method':<24}{'lines':>12}{'seconds':>10}{'peak RSS MB':>13}{'work MB':>10}")
    for name, n, r in rows:
        print(f"{name:<24}{n:>12,}{r['seconds']:>10.2f}{r['peak_mb']:>13.0f}{r['work_mb']:>10.0f}")
    big_run, ours, ref = rows[0][2], rows[1][2], rows[2][2]
    speedup = ref["seconds"] / ours["seconds"]
    memory_ratio = ref["work_mb"] / ours["work_mb"]
    print(
        f"\nratios on {args.ref_lines:,} lines: time {speedup:.1f}x, work memory "
        f"{memory_ratio:.1f}x, whole-process peak RSS {ref['peak_mb'] / ours['peak_mb']:.1f}x"
    )
    checks = [
        (f"{args.lines:,} lines in <= {TARGETS['seconds']:.0f} s", big_run["seconds"],
         big_run["seconds"] <= TARGETS["seconds"], "s"),
        (f"peak memory <= {TARGETS['peak_gb']} GB", big_run["peak_mb"] / 1024,
         big_run["peak_mb"] / 1024 <= TARGETS["peak_gb"], "GB"),
        (f"faster than the reference >= {TARGETS['speedup']:.0f}x", speedup,
         speedup >= TARGETS["speedup"], "x"),
        (f"less work memory than the reference >= {TARGETS['memory_ratio']:.0f}x", memory_ratio,
         memory_ratio >= TARGETS["memory_ratio"], "x"),
    ]  # fmt: skip
    print()
    for label, value, ok, unit in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {label:<44}{value:>8.2f} {unit}")


if __name__ == "__main__":
    main()
