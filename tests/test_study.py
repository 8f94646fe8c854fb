import json
import subprocess
import sys

import pytest

from textgan.errors import UserError
from textgan.rundir import read_rows
from textgan.study import (
    DEFAULT_CONSTRAINTS,
    StudyConfig,
    lipschitz_study,
    markdown_table,
    parse_constraints,
    seconds_per_iteration,
    summarize_run,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _overrides(data_dir, **train):
    """A model and schedule small enough for a study of six runs in seconds."""
    return {
        "corpus": {"data_dir": str(data_dir), "max_lines": 3000},
        "model": {"dim": 16, "blocks": 1},
        "train": {
            "batch_size": 16,
            "critic_iters": 2,
            "log_every": 1,
            "eval_every": 2,
            "eval_samples": 64,
            "diag_every": 2,
            "ckpt_every": 100,
            **train,
        },
    }


def test_tiny_study_runs_every_constraint_and_writes_table_and_figures(tmp_path, gbw_dir):
    cfg = StudyConfig(
        corpus=str(gbw_dir),
        preset="tiny",
        minutes=5.0,
        iters=3,
        overrides=_overrides(tmp_path / "data"),
    )
    out = tmp_path / "study"
    result = lipschitz_study(cfg, out, progress=False, echo=lambda _: None)
    rows = {row["constraint"]: row for row in result["rows"]}
    assert list(rows) == list(DEFAULT_CONSTRAINTS)
    for kind, row in rows.items():
        run = out / kind
        assert json.loads((run / "config.json").read_text())["lipschitz"]["kind"] == kind
        diags = [json.loads(line) for line in (run / "diagnostics.jsonl").read_text().splitlines()]
        assert [d["iter"] for d in diags] == [2, 3]  # every diag_every and at the last one
        assert all(d["lipschitz"] == kind for d in diags)
        assert row["status"] == "ok" and row["iterations"] == 3
        assert all(0 <= row[f"js{n}"] <= 1 for n in range(1, 5))
        assert row["seconds_per_iter"] > 0 and row["grad_norm_interp"] > 0
        assert (row["clip_share"] is not None) == (kind == "clip")
        assert (run / "plots" / "training.png").is_file()  # training draws its own plots
    assert 0 < rows["clip"]["clip_share"] <= 1
    assert all(0 < result["floors"][f"js{n}"] < 1 for n in range(1, 5))
    assert json.loads((out / "study.json").read_text()) == result
    table = (out / "study.md").read_text().splitlines()
    floors = [f"{result['floors'][f'js{n}']:.3f}" for n in range(1, 5)]
    assert table[2] == "| real vs real (floor) | | | | " + " | ".join(floors) + " | | |"
    for line, kind in zip(table[3:9], DEFAULT_CONSTRAINTS, strict=True):
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        row = rows[kind]
        assert cells[:2] == [kind, "3"]
        assert float(cells[2]) == pytest.approx(row["seconds_per_iter"], abs=0.005)
        assert float(cells[3]) == pytest.approx(row["wasserstein"], abs=5e-4, rel=1e-3)
        js = [float(c) for c in cells[4:8]]
        assert js == pytest.approx([row[f"js{n}"] for n in range(1, 5)], abs=5e-4)
        assert float(cells[8]) == pytest.approx(row["grad_norm_interp"], rel=5e-3)
        share = "—" if kind != "clip" else f"{100 * row['clip_share']:.1f}%"
        assert cells[9] == share
    assert table[9:] == [
        "",
        "Corpus `" + str(gbw_dir) + "`, preset `tiny`, seed 0, 5 min of training per constraint.",
    ]
    for name in ("training", "js", "weights", "grad_norms", "input_grad"):
        assert (out / "plots" / f"{name}.png").read_bytes()[:8] == PNG_SIGNATURE
    assert (out / "summary.png").read_bytes()[:8] == PNG_SIGNATURE


def test_time_budget_stops_each_run_early(tmp_path, gbw_dir):
    cfg = StudyConfig(
        corpus=str(gbw_dir),
        preset="tiny",
        minutes=0.02,  # 1.2 s
        constraints=("gp", "clip"),
        overrides=_overrides(tmp_path / "data", diag_every=1000, eval_every=1000),
    )
    result = lipschitz_study(cfg, tmp_path / "study", progress=False, echo=lambda _: None)
    for row in result["rows"]:
        assert 1 <= row["iterations"] < 200  # tiny trains 200 iterations without a budget
        assert row["js4"] is not None  # the last iteration is evaluated
        run = tmp_path / "study" / row["constraint"]
        times = [r["time"] for r in read_rows(run / "metrics.jsonl") if "wasserstein" in r]
        # Stopped by the budget at the first iteration past 1.2 s (log_every is 1), and only then.
        assert row["seconds"] == times[-1] >= 1.2 - 0.001
        assert all(t < 1.2 + 0.01 for t in times[:-1])  # no earlier row past the budget
        diags = [json.loads(line) for line in (run / "diagnostics.jsonl").read_text().splitlines()]
        assert [d["iter"] for d in diags] == [row["iterations"]]
        assert (run / "checkpoints" / f"iter_{row['iterations']:07d}").is_dir()


def test_interrupted_run_ends_the_study_with_a_table(tmp_path, gbw_dir, monkeypatch):
    import dataclasses
    import signal

    from textgan import train as T

    real_train = T.train

    def interrupted(*args, **kwargs):  # as if Ctrl-C arrived during the first run
        return dataclasses.replace(real_train(*args, **kwargs), stopped_by=signal.SIGINT)

    monkeypatch.setattr(T, "train", interrupted)
    cfg = StudyConfig(
        corpus=str(gbw_dir),
        preset="tiny",
        iters=2,
        constraints=("sn", "gp"),
        overrides=_overrides(tmp_path / "data"),
    )
    out = tmp_path / "study"
    result = lipschitz_study(cfg, out, progress=False, echo=lambda _: None)
    assert result["stopped_by"] == signal.SIGINT
    assert [r["constraint"] for r in result["rows"]] == ["sn"]
    assert result["rows"][0]["status"] == "interrupted before its budget"
    assert not (out / "gp").exists() and "| sn (stopped) | 2 |" in (out / "study.md").read_text()


def test_seconds_per_iteration_is_the_median_rate():
    rows = [{"iter": i, "time": t} for i, t in ((10, 1.0), (20, 2.0), (30, 9.0), (40, 10.0))]
    assert seconds_per_iteration(rows) == pytest.approx(0.1)
    assert seconds_per_iteration(rows[:1]) == pytest.approx(0.1)  # one row: time / iterations
    assert seconds_per_iteration([]) is None


def test_markdown_table_is_the_expected_text():
    result = {
        "settings": {"corpus": "pydocs", "preset": "small", "seed": 3, "minutes": 2.5},
        "floors": {"js1": 0.0123, "js2": 0.1, "js3": 0.25, "js4": None},
        "rows": [
            {
                "constraint": "clip",
                "status": "ok",
                "iterations": 120,
                "seconds_per_iter": 0.0456,
                "wasserstein": 0.98765,
                "js1": 0.1,
                "js2": 0.2,
                "js3": 0.3,
                "js4": 0.4,
                "grad_norm_interp": 0.012345,
                "clip_share": 0.877,
            },
            {
                "constraint": "none",
                "status": "stopped: training diverged by iteration 7",
                "iterations": 7,
                "seconds_per_iter": None,
                "wasserstein": -1.674e11,
                "js1": None,
                "js2": None,
                "js3": None,
                "js4": float("nan"),
                "grad_norm_interp": 12345.6,
                "clip_share": None,
            },
        ],
    }
    assert markdown_table(result) == (
        "| constraint | iterations | s / iter | W estimate | JS-1 | JS-2 | JS-3 | JS-4 "
        "| ‖∇x̂ D‖ | weights at ±c |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        "| real vs real (floor) | | | | 0.012 | 0.100 | 0.250 | — | | |\n"
        "| clip | 120 | 0.05 | 0.988 | 0.100 | 0.200 | 0.300 | 0.400 | 0.0123 | 87.7% |\n"
        "| none (stopped) | 7 | — | -1.67e+11 | — | — | — | — | 1.23e+04 | — |\n"
        "\n"
        "Corpus `pydocs`, preset `small`, seed 3, 2.5 min of training per constraint.\n"
        "none: stopped: training diverged by iteration 7\n"
    )


def test_summary_of_a_run_that_stopped_before_logging(tmp_path):
    (tmp_path / "none").mkdir()
    row = summarize_run(tmp_path / "none", "stopped: diverged")
    assert row["iterations"] == 0 and row["js4"] is None and row["clip_share"] is None
    s = {"corpus": "c", "preset": "small", "seed": 0, "minutes": 3.0}
    floors = {f"js{n}": 0.1 * n for n in range(1, 5)}
    text = markdown_table({"settings": s, "floors": floors, "rows": [row]})
    assert "| none (stopped) | 0 | — |" in text and "none: stopped: diverged" in text
    row.update(status="ok", wasserstein=-1.674e11, seconds_per_iter=0.15)
    text = markdown_table({"settings": s, "floors": floors, "rows": [row]})
    assert "| none | 0 | 0.15 | -1.67e+11 |" in text  # a diverged W stays readable


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"minutes": 0}, "--minutes must be a positive number"),
        ({"constraints": ("gp", "wgan")}, "unknown constraint(s) wgan"),
        ({"constraints": ("gp", "gp")}, "names a constraint twice"),
        ({"constraints": ()}, "--constraints is empty"),
        ({"iters": 0}, "iters must be at least 1"),
    ],
)
def test_bad_settings_are_refused(tmp_path, kwargs, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        lipschitz_study(StudyConfig(corpus="pydocs", **kwargs), tmp_path / "s", progress=False)
    assert not (tmp_path / "s").exists()


def test_parse_constraints():
    assert parse_constraints(" gp, clip ,sn,") == ("gp", "clip", "sn")


def _cli(*args, cwd=None):
    code = "from textgan.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, cwd=cwd
    )


def test_cli_bad_inputs_are_one_line_exit_2(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    for args, message in (
        (["--constraints", "gp,bogus"], "unknown constraint(s) bogus"),
        (["--minutes", "-1"], "--minutes must be a positive number"),
        (["--out", tmp_path / "full"], "already exists and is not empty"),
        (["--diag-every", "0"], "diag_every must be at least 1"),
    ):
        res = _cli("study", "lipschitz", "--corpus", "pydocs", *args, cwd=tmp_path)
        assert res.returncode == 2, res.stderr
        assert res.stderr.startswith("textgan: error: ") and message in res.stderr
        assert res.stderr.count("\n") == 1
