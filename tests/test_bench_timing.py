"""How the benchmarks time several samplers alike (benchmarks/timing.py): every call warmed up
before any is timed, then rounds whose order rotates; and the sampling benchmark end to end."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import textgan

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
ENV = {**os.environ, "PYTHONPATH": str(Path(textgan.__file__).parents[1])}


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


timing = _module("timing")


def test_every_call_is_warmed_up_then_timed_in_rotated_rounds():
    ran = []
    calls = {name: (lambda name=name: ran.append(name)) for name in ("raw", "ema", "kn5")}
    seconds = timing.interleaved_minimum(calls, rounds=4)
    assert ran[:3] == ["raw", "ema", "kn5"]  # the warm-up, before any timed call
    rounds = [ran[i : i + 3] for i in range(3, len(ran), 3)]
    assert rounds == [
        ["raw", "ema", "kn5"],
        ["ema", "kn5", "raw"],
        ["kn5", "raw", "ema"],
        ["raw", "ema", "kn5"],
    ]
    assert list(seconds) == ["raw", "ema", "kn5"]
    assert all(0 <= s < float("inf") for s in seconds.values())  # each one timed


@pytest.mark.parametrize(("calls", "rounds"), [({}, 3), ({"a": lambda: None}, 0)])
def test_nothing_to_time_is_an_error(calls, rounds):
    with pytest.raises(ValueError, match="at least one call and one round"):
        timing.interleaved_minimum(calls, rounds)


def test_sample_speed_times_each_source_against_the_first(tmp_path):
    out = tmp_path / "speed.json"
    args = ["--presets", "tiny", "--baseline", "kn5", "--corpus", "pydocs", "-n", "16"]
    args += ["--rounds", "2", "--cpu-time", "--data-dir", str(tmp_path / "data")]
    args += ["--json", str(out)]
    subprocess.run(
        [sys.executable, str(BENCHMARKS / "sample_speed.py"), *args],
        check=True,
        capture_output=True,
        env=ENV,
        cwd=tmp_path,
    )
    result = json.loads(out.read_text())
    sources = [k for k in result if k not in ("n", "rounds", "cpu_time")]
    assert sources == ["tiny raw", "tiny EMA", "kn5"] and result["cpu_time"] is True
    assert result["tiny raw"]["ratio"] == 1.0 and (result["n"], result["rounds"]) == (16, 2)
    for row in (result[k] for k in ("tiny raw", "tiny EMA", "kn5")):
        assert row["samples_per_s"] == pytest.approx(16 / row["seconds"])
