import json
import re
import subprocess
import sys

import pytest

from textgan import config as C
from textgan.errors import UserError
from textgan.files import read_rows
from textgan.studies.compare import (
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

    from textgan.training import loop as T

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
        (
            {"constraints": ("gp", "r1")},
            "lipschitz.loss wgan cannot be trained with lipschitz.kind r1",
        ),
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


def _assert_one_line_error(res, message):
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith("textgan: error: ") and message in res.stderr
    assert res.stderr.count("\n") == 1


def test_cli_bad_inputs_are_one_line_exit_2(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    for args, message in (
        (["--constraints", "gp,bogus"], "unknown constraint(s) bogus"),
        (["--minutes", "-1"], "--minutes must be a positive number"),
        (["--out", tmp_path / "full"], "already exists and is not empty"),
        (["--diag-every", "0"], "diag_every must be at least 1"),
    ):
        _assert_one_line_error(
            _cli("study", "lipschitz", "--corpus", "pydocs", *args, cwd=tmp_path), message
        )


# -- recipes ---------------------------------------------------------------------------------


def test_recipe_specs_parse_to_layers(tmp_path):
    from textgan.studies.recipes import parse_named_recipe

    fast = parse_named_recipe("fast=small:train.critic_iters=2, model.dim=64,lipschitz.kind=clip")
    assert (fast.name, fast.preset, fast.config_file) == ("fast", "small", None)
    assert fast.changes == {
        "train": {"critic_iters": 2},
        "model": {"dim": 64},
        "lipschitz": {"kind": "clip"},
    }
    layers = fast.layers({"train": {"seed": 3}})
    assert layers["train"]["critic_iters"] == 2
    assert layers["train"]["lr"] == C.PRESETS["small"]["train"]["lr"]  # the preset's
    assert layers["train"]["seed"] == 3 and layers["model"] == {"dim": 64, "blocks": 2}
    assert fast.sections() == {
        "train": {"critic_iters": 2, "preset": "small"},
        "model": {"dim": 64},
        "lipschitz": {"kind": "clip"},
    }
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"train": {"preset": "tiny", "lr": 2e-3}, "model": {"dim": 8}}))
    from_file = parse_named_recipe(f"mine={path}:train.ema_decay=0,train.lr_gen=null")
    layers = from_file.layers()
    assert layers["train"]["preset"] == "tiny" and layers["train"]["iters"] == 400
    assert layers["train"]["lr"] == 2e-3 and layers["train"]["ema_decay"] == 0
    assert layers["train"]["lr_gen"] is None and layers["model"]["dim"] == 8
    assert from_file.sections()["train"] == {
        "preset": "tiny",
        "lr": 2e-3,
        "ema_decay": 0,
        "lr_gen": None,
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("small", "is not NAME=SPEC"),
        ("a b=small", "must be a plain folder name"),
        ("a=large", "'large' is neither a preset"),
        ("a=small:critic_iters=2", "is not SECTION.FIELD=VALUE"),
        ("a=small:train.critic_itrs=2", "unknown field train.critic_itrs"),
        ("a=small:train.critic_iters=two", "train.critic_iters must be a int, got 'two'"),
        ("a=small:train.seed=1", "train.seed is set by the study for every run"),
        ("a=small:corpus.corpus=x", "corpus.corpus is set by the study"),
    ],
)
def test_bad_recipes_are_refused(text, message):
    from textgan.studies.recipes import parse_named_recipe

    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        parse_named_recipe(text)


def test_parse_numbers():
    from textgan.studies.recipes import parse_numbers

    assert parse_numbers(" 0, 1,", int, "--seeds") == (0, 1)
    assert parse_numbers("0.7,0.55", float, "--targets") == (0.7, 0.55)
    for text, message in (("a", "comma-separated ints"), ("", "is empty"), ("1,1", "twice")):
        with pytest.raises(UserError, match=message):
            parse_numbers(text, int, "--seeds")
    with pytest.raises(UserError, match="finite"):
        parse_numbers("nan", float, "--targets")


# -- time to quality -------------------------------------------------------------------------


def test_minutes_to_target_is_the_first_evaluation_at_or_below_it():
    from textgan.studies.report import minutes_to, spread

    evals = [
        {"time": 30.0, "js4": 0.5, "ema_js4": 0.9},
        {"time": 60.0, "js4": 0.5, "ema_js4": 0.7},
        {"time": 90.0, "js4": 0.5, "ema_js4": 0.8},
        {"time": 120.0, "js4": 0.5, "ema_js4": 0.6},
    ]
    assert minutes_to(evals, 0.8) == 1.0 and minutes_to(evals, 0.7) == 1.0
    assert minutes_to(evals, 0.65) == 2.0 and minutes_to(evals, 0.5) is None
    raw = [{"time": 6.0, "js4": 0.4}]  # EMA off: the raw generator's JS-4
    assert minutes_to(raw, 0.5) == pytest.approx(0.1)
    assert spread([1.0, 3.0]) == {"mean": 2.0, "min": 1.0, "max": 3.0, "reached": 2, "of": 2}
    assert spread([1.0, None]) == {"mean": None, "min": 1.0, "max": 1.0, "reached": 1, "of": 2}


def _compare_result():
    machine = {
        "cpu": "CPU X",
        "usable_cores": 2,
        "platform": "Linux",
        "torch": "2.13",
        "runs_at_once": 2,
        "threads_per_run": 1,
    }
    run = {
        "status": "ok",
        "iterations": 50,
        "iters_per_second": 8.25,
        "js4": 0.9,
        "ema_js4": 0.8,
    }
    return {
        "settings": {
            "corpus": "pydocs",
            "minutes": 2.0,
            "eval_minutes": 0.5,
            "eval_samples": 317,
            "seeds": [0, 1],
            "targets": [0.9, 0.7],
        },
        "machine": machine,
        "ema": True,
        "floors": {"js4": 0.41},
        "runs": [
            {**run, "run": "a-s0", "recipe": "a", "seed": 0, "minutes_to_target": [0.5, None]},
            {**run, "run": "a-s1", "recipe": "a", "seed": 1, "minutes_to_target": [1.0, 1.5]},
        ],
        "recipes": [
            {
                "recipe": "a",
                "minutes_to_target": [
                    {"mean": 0.75, "min": 0.5, "max": 1.0, "reached": 2, "of": 2},
                    {"mean": None, "min": 1.5, "max": 1.5, "reached": 1, "of": 2},
                ],
                "quality": {"mean": 0.8, "min": 0.8, "max": 0.8, "reached": 2, "of": 2},
                "iters_per_second": {"mean": 8.25, "min": 8.0, "max": 8.5, "reached": 2, "of": 2},
            }
        ],
    }


def test_compare_markdown_is_the_expected_text():
    from textgan.studies.report import compare_markdown

    assert compare_markdown(_compare_result()) == (
        "# Time to quality\n\n"
        "Corpus `pydocs`; 2 min of training per run, evaluated every 0.5 min on 317 samples; "
        "seeds 0, 1; 2 run(s) at a time with 1 thread(s) each on CPU X (2 usable cores), "
        "Linux, torch 2.13.\n\n"
        "| recipe | min to ≤ 0.9 | min to ≤ 0.7 | final EMA JS-4 | iterations / s |\n"
        "|---|---:|---:|---:|---:|\n"
        "| real vs real (floor) | | | 0.410 | |\n"
        "| a | 0.75 (0.50–1.00) | not reached (1/2) | 0.800 | 8.2 (8.0–8.5) |\n\n"
        "| run | recipe | seed | status | iterations | iterations / s | JS-4 | EMA JS-4 "
        "| min to ≤ 0.9 | min to ≤ 0.7 |\n"
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|\n"
        "| a-s0 | a | 0 | ok | 50 | 8.2 | 0.900 | 0.800 | 0.50 | — |\n"
        "| a-s1 | a | 1 | ok | 50 | 8.2 | 0.900 | 0.800 | 1.00 | 1.50 |\n\n"
        "Minutes: wall-clock time of the first evaluation at or below the target.\n"
    )


def _compare_config(tmp_path, *recipes, **settings):
    from textgan.studies.compare import CompareConfig
    from textgan.studies.recipes import parse_named_recipe

    named = tuple(parse_named_recipe(text) for text in recipes)
    return CompareConfig("pydocs", named, data_dir=str(tmp_path / "data"), **settings)


def test_compare_two_recipes_side_by_side(tmp_path):
    from textgan.studies.compare import FIGURE, compare_study
    from textgan.studies.report import compare_run, evaluations, quality, time_figure

    cfg = _compare_config(
        tmp_path,
        "base=tiny",
        "narrow=tiny:model.dim=16,train.critic_iters=2",
        minutes=0.04,  # 2.4 s
        eval_minutes=0.01,
        targets=(1.0, 0.01),  # every evaluation reaches the first, none the second
        parallel=2,
        threads=1,
        device="cpu",
        eval_samples=64,
    )
    out = tmp_path / "study"
    result = compare_study(cfg, out, progress=False, echo=lambda _: None)
    assert json.loads((out / "study.json").read_text()) == result
    assert [r["run"] for r in result["runs"]] == ["base-s0", "narrow-s0"]
    assert result["machine"]["threads_per_run"] == 1 and result["machine"]["runs_at_once"] == 2
    assert result["settings"]["recipes"] == {
        "base": "tiny",
        "narrow": "tiny:model.dim=16,train.critic_iters=2",
    }
    for row in result["runs"]:
        run = out / row["run"]
        config = json.loads((run / "config.json").read_text())
        assert config["train"]["max_minutes"] == 0.04 and config["train"]["eval_minutes"] == 0.01
        assert config["train"]["eval_samples"] == 64
        assert (config["model"]["dim"] == 16) == (row["recipe"] == "narrow")
        evals = [r for r in read_rows(run / "metrics.jsonl") if "js1" in r]
        times = [r["time"] for r in evals]
        assert row["status"] == "ok" and len(evals) >= 2 and times[-1] >= 2.4
        assert row["evaluations"] == len(evals) and row["iterations"] == evals[-1]["iter"]
        assert row["ema_js4"] == evals[-1]["ema_js4"] and row["quality"] == evals[-1]["ema_js4"]
        assert row["minutes_to_target"] == [times[0] / 60, None]
        assert result["floors"]["js4"] == evals[-1]["floor_js4"]
        # Targets taken from the run's own curve: the first evaluation at or below each one.
        for e in evals:
            first = next(x for x in evals if x["ema_js4"] <= e["ema_js4"])
            redo = compare_run(run, row["recipe"], 0, "ok", [e["ema_js4"]])
            assert redo["minutes_to_target"] == [first["time"] / 60]
    table = (out / "study.md").read_text().splitlines()
    runs_at = table.index("| run | recipe | seed | status | iterations | iterations / s | JS-4 "
                          "| EMA JS-4 | min to ≤ 1 | min to ≤ 0.01 |")  # fmt: skip
    for line, row in zip(table[runs_at + 2 : runs_at + 4], result["runs"], strict=True):
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert cells[:5] == [row["run"], row["recipe"], "0", "ok", str(row["iterations"])]
        assert cells[7] == f"{row['ema_js4']:.3f}"
        assert cells[8:] == [f"{row['minutes_to_target'][0]:.2f}", "—"]
    assert (out / FIGURE).read_bytes()[:8] == PNG_SIGNATURE
    # The figure's lines are the runs' evaluation rows: minutes against EMA JS-4.
    axes = time_figure(result, out).axes[0]
    lines = [line for line in axes.get_lines() if not line.get_label().startswith("_")]
    assert [line.get_label() for line in lines] == [
        "base, seed 0",
        "narrow, seed 0",
        "real vs real",
    ]
    for line, row in zip(lines[:2], result["runs"], strict=True):
        evals = evaluations(out / row["run"])
        assert list(line.get_xdata()) == pytest.approx([e["time"] / 60 for e in evals])
        assert list(line.get_ydata()) == pytest.approx([quality(e) for e in evals])
    assert list(lines[2].get_ydata()) == [result["floors"]["js4"]] * 2


def test_compare_refuses_recipes_on_different_corpora(tmp_path):
    from textgan.studies.compare import compare_study

    cfg = _compare_config(tmp_path, "a=tiny", "b=tiny:corpus.max_lines=500")
    with pytest.raises(UserError, match="runs a-s0 and b-s0 would train on different corpora"):
        compare_study(cfg, tmp_path / "s", progress=False, echo=lambda _: None)
    assert not (tmp_path / "s").exists()


def test_cli_compare_bad_inputs_are_one_line_exit_2(tmp_path):
    base = ["study", "compare", "--corpus", "pydocs", "--recipe", "a=tiny"]
    for args, message in (
        (["--recipe", "a=small"], "two recipes share a name"),
        (["--recipe", "b=tiny:train.max_minutes=2"], "train.max_minutes is set by the study"),
        (["--targets", "0.7,1.5"], "--targets are JS-4 values in (0, 1]"),
        (["--seeds", "0,x"], "--seeds '0,x' must be comma-separated ints"),
        (["--minutes", "0"], "--minutes must be a positive number"),
        (["--parallel", "0"], "--parallel must be at least 1"),
        (["--device", "cpu,cpu"], "--device names one device"),
    ):
        _assert_one_line_error(_cli(*base, *args, cwd=tmp_path), message)


def _study_copy(src, dst, **changes):
    """A second study folder: ``src``'s runs copied, its study.json changed by ``changes``
    (``section.key=value``)."""
    import shutil

    shutil.copytree(src, dst)
    result = json.loads((dst / "study.json").read_text())
    for key, value in changes.items():
        section, field = key.split("__")
        result[section][field] = value
    (dst / "study.json").write_text(json.dumps(result))
    return result


def test_report_rebuilds_a_study_from_its_runs_as_they_are_now(tmp_path):
    from textgan.studies.compare import FIGURE, compare_study
    from textgan.studies.rebuild import rebuild_report
    from textgan.studies.report import compare_markdown

    cfg = _compare_config(
        tmp_path, "base=tiny", minutes=0.03, eval_minutes=0.01, targets=(1.0,),
        threads=1, device="cpu", eval_samples=64,
    )  # fmt: skip
    study = tmp_path / "study"
    compare_study(cfg, study, progress=False, echo=lambda _: None)
    # The run goes on (as --resume would): one more evaluation, later and better.
    metrics = study / "base-s0" / "metrics.jsonl"
    rows = read_rows(metrics)
    step = {**[r for r in rows if "wasserstein" in r][-1], "iter": rows[-1]["iter"] + 5}
    later = {**[r for r in rows if "js1" in r][-1], "iter": step["iter"], "ema_js4": 0.05}
    step["time"] = later["time"] = 600.0
    metrics.write_text(metrics.read_text() + json.dumps(step) + "\n" + json.dumps(later) + "\n")
    result = rebuild_report([study], targets=[1.0, 0.1])
    assert json.loads((study / "study.json").read_text()) == result
    (row,) = result["runs"]
    assert row["run"] == "base-s0" and row["iterations"] == later["iter"]
    assert row["ema_js4"] == 0.05 and row["minutes_to_target"][1] == 10.0
    assert result["settings"]["minutes"] == 10.0 and result["settings"]["targets"] == [1.0, 0.1]
    assert (study / "study.md").read_text() == compare_markdown(result)
    assert "| base-s0 | base | 0 | ok |" in (study / "study.md").read_text()
    # Another study of another recipe, measured alike: one table over both, runs by path.
    _study_copy(study, tmp_path / "other", settings__recipes={"wide": "tiny:model.dim=64"})
    other = json.loads((tmp_path / "other" / "study.json").read_text())
    other["runs"][0]["recipe"] = "wide"
    (tmp_path / "other" / "study.json").write_text(json.dumps(other))
    both = rebuild_report([study, tmp_path / "other"], tmp_path / "both")
    assert [r["run"] for r in both["runs"]] == ["../study/base-s0", "../other/base-s0"]
    assert [r["recipe"] for r in both["recipes"]] == ["base", "wide"]
    assert both["settings"]["recipes"] == {"base": "tiny", "wide": "tiny:model.dim=64"}
    assert both["sources"] == [str(study), str(tmp_path / "other")]
    assert (tmp_path / "both" / FIGURE).read_bytes()[:8] == PNG_SIGNATURE
    some = rebuild_report([study, tmp_path / "other"], tmp_path / "some", recipes=["wide"])
    assert [r["run"] for r in some["runs"]] == ["../other/base-s0"]
    assert [r["recipe"] for r in some["recipes"]] == ["wide"]
    with pytest.raises(UserError, match="no recipe narrow in these studies; they have base, wide"):
        rebuild_report([study, tmp_path / "other"], tmp_path / "none", recipes=["narrow"])


def test_report_refuses_studies_it_cannot_merge(tmp_path):
    from textgan.studies.rebuild import rebuild_report

    study = tmp_path / "s"
    study.mkdir()
    base = _compare_result()
    base.update(study="compare", out=str(study))
    base["settings"].update(recipes={"a": "tiny"}, device="cpu")
    (study / "study.json").write_text(json.dumps(base))
    for name, changes, message in (
        ("samples", {"settings__eval_samples": 999}, "differ in eval_samples (317 against 999)"),
        ("cpu", {"machine__cpu": "CPU Y"}, "differ in cpu"),
        ("clash", {"settings__recipes": {"a": "small"}}, "recipe a is 'tiny' in one study"),
    ):
        _study_copy(study, tmp_path / name, **changes)
        with pytest.raises(UserError, match=re.escape(message)):
            rebuild_report([study, tmp_path / name], tmp_path / f"out-{name}")
        assert not (tmp_path / f"out-{name}").exists()
    with pytest.raises(UserError, match="several studies need --out"):
        rebuild_report([study, tmp_path / "cpu"])
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "study.json").write_text(json.dumps({"study": "lipschitz"}))
    _assert_one_line_error(
        _cli("study", "report", tmp_path / "runs"), "is not a time-to-quality study"
    )
    _assert_one_line_error(_cli("study", "report", tmp_path / "none"), "study file")
    _assert_one_line_error(
        _cli("study", "report", study, "--targets", "2"), "--targets are JS-4 values"
    )
    _assert_one_line_error(
        _cli("study", "report", study, "--out", tmp_path / "s" / "study.json"),
        "already exists and is not empty",
    )
