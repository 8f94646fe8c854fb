"""The memory estimate against measured peaks, and the limits a process runs under."""

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

import textgan
from textgan import devices
from textgan.config import ModelConfig
from textgan.nn import memory

GIB = 1 << 30
CRITIC_16x3 = {"critic_dim": 16, "critic_blocks": 3}
# The child processes run the textgan under test, wherever they start.
ENV = {**os.environ, "PYTHONPATH": str(Path(textgan.__file__).parents[1])}

# Trainer steps at given sizes, their peak resident memory beside the estimate.
MEASURE = Path(__file__).resolve().parents[1] / "benchmarks" / "memory_peak.py"


@pytest.mark.parametrize(
    ("length", "dim", "blocks", "batch", "vocab"),
    [
        (2000, 64, 1, 64, 100),  # activations dominate
        (20000, 32, 1, 4, 50),  # the generator's input layer dominates
        (1000, 128, 2, 64, 100),  # the allocator's slack was largest (1.48x the tensors)
    ],
)
def test_the_estimate_covers_the_measured_peak_of_training(length, dim, blocks, batch, vocab):
    sizes = f"{length},{dim},{blocks},{batch},{vocab}"
    out = subprocess.run(
        [sys.executable, str(MEASURE), sizes], capture_output=True, text=True, check=True, env=ENV
    )
    result = json.loads(out.stdout)
    peak, estimate = result["peak_bytes"], result["estimate_bytes"]
    assert peak > 500 << 20  # large enough that the sizes, not the process, set it
    assert peak <= estimate <= 2 * peak  # on the safe side, but not by more than the peak


def _limited(limit: str, code: str) -> str:
    """Output of ``code`` run in a Python whose soft ``limit`` leaves 1 GiB above its size now."""
    field = {"RLIMIT_AS": "VmSize", "RLIMIT_DATA": "VmData"}[limit]
    script = f"""
import resource
size = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status")
            if line.startswith("{field}:"))
resource.setrlimit(resource.{limit}, (size + {GIB}, resource.getrlimit(resource.{limit})[1]))
{code}
"""
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=ENV
    ).stdout


@pytest.mark.parametrize("limit", ["RLIMIT_AS", "RLIMIT_DATA"])
def test_memory_limit_is_what_a_ulimit_leaves(limit):
    code = "from textgan.devices import memory_limit; print(memory_limit())"
    left = int(_limited(limit, code))
    assert 0.9 * GIB < left <= GIB  # the import took a little of it


def test_memory_limit_is_the_machines_without_ulimits():
    limits = (resource.RLIMIT_AS, resource.RLIMIT_DATA)
    if any(resource.getrlimit(k)[0] != resource.RLIM_INFINITY for k in limits):
        pytest.skip("this process runs under a memory ulimit")
    assert devices.limit_headroom() is None
    assert devices.memory_limit() <= os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def test_a_run_beyond_the_address_space_limit_is_refused_in_one_line(tmp_path):
    """``textgan train --seq-len 100000`` under ``ulimit -v 8G`` (a battery case): the estimate
    refuses it before the corpus is read, where it used to start and die in the allocator."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (8 * GIB, resource.RLIM_INFINITY))

    data = tmp_path / "data"
    command = [sys.executable, "-m", "textgan", "train", "--preset", "tiny", "--corpus"]
    command += ["pydocs", "--seq-len", "100000", "--data-dir", str(data), "--no-progress"]
    command += ["--run-dir", str(tmp_path / "run")]
    run = {"capture_output": True, "text": True, "cwd": tmp_path, "env": ENV, "timeout": 120}
    done = subprocess.run(command, preexec_fn=limit, **run)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "at its peak" in lines[0] and "--seq-len (now 100,000)" in lines[0]
    assert not data.exists()  # refused before preparing the corpus


@pytest.mark.parametrize(("critic", "width", "depth"), [({}, 8, 1), (CRITIC_16x3, 16, 3)])
def test_the_estimate_counts_each_networks_own_sizes(critic, width, depth):
    """Parameters exactly, each network at its own width and depth; activations at the larger
    of each (a bound from above: the factors were measured on equal networks)."""
    model = ModelConfig(vocab_size=10, seq_len=32, dim=8, blocks=1, kernel=5, noise_dim=16,
                        **critic)  # fmt: skip
    g, d = memory.parameter_counts(model)
    assert g == 16 * 32 * 8 + 32 * 8 + 2 * (8 * 8 * 5 + 8) + 8 * 10 + 10
    w = width
    assert d == 10 * w + w + depth * 2 * (w * w * 5 + w) + 32 * w + 1
    estimate = memory.estimate(model, batch_size=2, ema=False)
    assert estimate.params == memory.BYTES * 5 * (g + d)
    tensors = memory.BYTES * 2 * 32 * (width * (8 * depth + 13) + 7 * 10)
    assert estimate.activations == int(memory.ALLOCATOR_SLACK * tensors)
