import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from textgan import config as C
from textgan.errors import UserError
from textgan.files import read_rows
from textgan.studies.constraints import (
    CONSTRAINT_ONLY,
    DEFAULT_CONSTRAINTS,
    StudyConfig,
    lipschitz_study,
    parse_constraints,
    plan_constraints,
    shared_config,
)
from textgan.studies.report import (
    lipschitz_markdown,
    seconds_per_iteration,
    shared_line,
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
        "Every run: D = 16, blocks 1, batch 16, 2 critic steps, Adam lr 0.001 constant, "
        "β = (0.5, 0.9), λ = 10 (penalty_every 1), c = 0.01, EMA 0.999; only the constraint "
        "differs.",
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


def _without_constraint(run_dir: Path) -> dict:
    """A run's config.json without what differs between a study's runs by design."""
    config = json.loads((run_dir / "config.json").read_text())
    assert config["lipschitz"].pop("kind") == run_dir.name
    assert config["train"].pop("run_dir") == str(run_dir)
    return config


@pytest.mark.parametrize("preset", [None, "small", "paper"])
def test_every_constraint_gets_the_same_config_but_the_constraint(tmp_path, preset):
    """Whatever the preset, the runs differ in lipschitz.kind alone: the penalty on every step
    (small's lazy penalty would refuse clip, sn, none and weigh λ·4 on the others) and a
    constant rate; the rest is the preset's."""
    chosen = {} if preset is None else {"preset": preset}
    cfg = StudyConfig("pydocs", **chosen, overrides={"corpus": {"data_dir": str(tmp_path)}})
    runs = plan_constraints(cfg, tmp_path / "study", progress=False)
    assert [run.name for run in runs] == list(DEFAULT_CONSTRAINTS)
    shared = shared_config(runs)
    for run in runs:
        config = run.config.to_dict()
        assert config["lipschitz"].pop("kind") == run.name
        assert config["train"].pop("run_dir") == str(tmp_path / "study" / run.name)
        assert config == shared
    assert {"train": {k: shared["train"][k] for k in CONSTRAINT_ONLY["train"]}} == CONSTRAINT_ONLY
    name = cfg.preset
    for section, values in C.PRESETS[name].items():
        for key, value in values.items():
            if key not in CONSTRAINT_ONLY.get(section, {}):
                assert shared[section][key] == value, (section, key)
    if preset is None:  # the recipe docs/lipschitz.md describes and measured
        assert name == "small-v1"
        assert shared_line(shared).startswith(
            "Every run: D = 128, blocks 2, batch 64, 5 critic steps, Adam lr 0.0003 constant, "
        )
        assert shared["train"]["iters"] == 15_000


def _documented_command() -> list[str]:
    text = (Path(__file__).parents[1] / "docs" / "lipschitz.md").read_text()
    blocks = [b for b in re.findall(r"```bash\n(.*?)```", text, re.S) if "study lipschitz" in b]
    assert len(blocks) == 1
    words = shlex.split(blocks[0].replace("\\\n", " "))
    assert words[:3] == ["textgan", "study", "lipschitz"]
    return words[1:]


@pytest.mark.usefixtures("one_thread")
def test_the_documented_study_runs_every_constraint_with_the_same_settings(tmp_path):
    """docs/lipschitz.md's command as written, on pydocs, the tiny preset and 3 iterations."""
    from click.testing import CliRunner

    from textgan.cli import main

    args = _documented_command()
    args[args.index("--corpus") + 1] = "pydocs"
    out = tmp_path / "study"
    scale = ["--preset", "tiny", "--iters", "3", "--out", out, "--data-dir", tmp_path / "data"]
    res = CliRunner().invoke(main, [*args, *map(str, scale), "--no-progress"])
    assert res.exit_code == 0, res.output
    result = json.loads((out / "study.json").read_text())
    assert [row["constraint"] for row in result["rows"]] == list(DEFAULT_CONSTRAINTS)
    assert all(row["status"] == "ok" and row["iterations"] == 3 for row in result["rows"])
    shared = result["shared"]
    for kind in DEFAULT_CONSTRAINTS:
        assert _without_constraint(out / kind) == shared
    documented = dict(zip(args[2::2], args[3::2], strict=True))  # the flags and values
    train = shared["train"]
    assert (train["eval_every"], train["diag_every"]) == (
        int(documented["--eval-every"]),
        int(documented["--diag-every"]),
    )
    assert train["max_minutes"] == float(documented["--minutes"])
    assert (train["penalty_every"], train["lr_decay"]) == (1, "constant")
    assert shared_line(shared) in (out / "study.md").read_text().splitlines()


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
    assert lipschitz_markdown(result) == (
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
    text = lipschitz_markdown({"settings": s, "floors": floors, "rows": [row]})
    assert "| none (stopped) | 0 | — |" in text and "none: stopped: diverged" in text
    row.update(status="ok", wasserstein=-1.674e11, seconds_per_iter=0.15)
    text = lipschitz_markdown({"settings": s, "floors": floors, "rows": [row]})
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
        (
            {"overrides": {"train": {"penalty_every": 4, "lr_decay": "linear"}}},
            "the Lipschitz study sets train.penalty_every, train.lr_decay for every run",
        ),
        ({"overrides": {"lipschitz": {"kind": "gp"}}}, "sets lipschitz.kind for every run"),
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
        "seconds": 120.4,
        "iterations": 50,
        "iters_per_second": 8.25,
        "js4": 0.9,
        "ema_js4": 0.8,
        "heldout_js4": 0.95,
        "ema_heldout_js4": 0.85,
        "unique_rate": 1.0,
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
        "floors": {"js4": 0.41, "heldout_js4": 0.62, "copy_rate": 0.43, "unique_rate": 0.98},
        "runs": [
            {
                **run,
                "run": "a-s0",
                "recipe": "a",
                "seed": 0,
                "minutes_to_target": [0.5, None],
                "copy_rate": 0.25,
            },
            # stopped at its last iteration before the 2-minute budget
            {
                **run,
                "run": "a-s1",
                "recipe": "a",
                "seed": 1,
                "minutes_to_target": [1.0, 1.5],
                "copy_rate": 0.0,
            }
            | {"seconds": 90.0},
        ],
        "recipes": [
            {
                "recipe": "a",
                "minutes_to_target": [
                    {"mean": 0.75, "min": 0.5, "max": 1.0, "reached": 2, "of": 2},
                    {"mean": None, "min": 1.5, "max": 1.5, "reached": 1, "of": 2},
                ],
                "quality": {"mean": 0.8, "min": 0.8, "max": 0.8, "reached": 2, "of": 2},
                "copy_rate": {"mean": 0.125, "min": 0.0, "max": 0.25, "reached": 2, "of": 2},
                "unique_rate": {"mean": 1.0, "min": 1.0, "max": 1.0, "reached": 2, "of": 2},
                "iters_per_second": {"mean": 8.25, "min": 8.0, "max": 8.5, "reached": 2, "of": 2},
            }
        ],
    }


def test_compare_markdown_is_the_expected_text():
    from textgan.studies.report import compare_markdown

    assert compare_markdown(_compare_result()) == (
        "# Time to quality\n\n"
        "Corpus `pydocs`; 1.5–2 min of training per run, evaluated every 0.5 min on 317 samples; "
        "seeds 0, 1; 2 run(s) at a time with 1 thread(s) each on CPU X (2 usable cores), "
        "Linux, torch 2.13.\n\n"
        "| recipe | min to ≤ 0.9 | min to ≤ 0.7 | final EMA JS-4 | copies | unique "
        "| iterations / s |\n"
        "|---|---:|---:|---:|---:|---:|---:|\n"
        "| real vs real (floor) | | | 0.410 | 43.0% | 98.0% | |\n"
        "| a | 0.75 (0.50–1.00) | not reached (1/2) | 0.800 | 12.5% (0.0%–25.0%) | 100.0% "
        "| 8.2 (8.0–8.5) |\n\n"
        "| run | recipe | seed | status | iterations | iterations / s | JS-4 | EMA JS-4 "
        "| copies | unique | min to ≤ 0.9 | min to ≤ 0.7 |\n"
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        "| a-s0 | a | 0 | ok | 50 | 8.2 | 0.900 | 0.800 | 25.0% | 100.0% | 0.50 | — |\n"
        "| a-s1 | a | 1 | ok | 50 | 8.2 | 0.900 | 0.800 | 0.0% | 100.0% | 1.00 | 1.50 |\n\n"
        "Minutes: wall-clock time of the first evaluation at or below the target.\n"
        "JS-4 against the training lines (the paper's protocol).\n"
        "Copies, unique: share of the last evaluation's samples (the EMA generator's when it has "
        "one) equal to a training line, and distinct; the floor row, of as many real held-out "
        "lines.\n"
    )
    # Against held-out lines: their JS-4 columns and floor.
    heldout = _compare_result()
    heldout["settings"]["reference"] = "heldout"
    lines = compare_markdown(heldout).splitlines()
    assert lines[4].startswith("| recipe | min to ≤ 0.9 | min to ≤ 0.7 | final EMA held-out JS-4 |")
    assert lines[6] == "| real vs real (floor) | | | 0.620 | 43.0% | 98.0% | |"
    assert lines[11].startswith("| a-s0 | a | 0 | ok | 50 | 8.2 | 0.950 | 0.850 | 25.0% |")
    assert "JS-4 against the held-out lines outside the floor's real ones" in lines[-2]


def _compare_config(tmp_path, *recipes, **settings):
    from textgan.studies.compare import CompareConfig
    from textgan.studies.recipes import parse_named_recipe

    named = tuple(parse_named_recipe(text) for text in recipes)
    return CompareConfig("pydocs", named, data_dir=str(tmp_path / "data"), **settings)


def test_compare_two_recipes_side_by_side(tmp_path):
    from textgan.studies.compare import FIGURE, compare_study
    from textgan.studies.figure import time_figure
    from textgan.studies.report import compare_run, evaluations, quality

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
    assert result["settings"]["diag_minutes"] == result["settings"]["ckpt_minutes"] == 0.05
    assert result["settings"]["recipes"] == {
        "base": "tiny",
        "narrow": "tiny:model.dim=16,train.critic_iters=2",
    }
    for row in result["runs"]:
        run = out / row["run"]
        config = json.loads((run / "config.json").read_text())
        assert config["train"]["max_minutes"] == 0.04 and config["train"]["eval_minutes"] == 0.01
        # Diagnostics and checkpoints on a wall-clock grid too: every fifth evaluation interval.
        assert config["train"]["diag_minutes"] == config["train"]["ckpt_minutes"] == 0.05
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
    head = "| run | recipe | seed | status | iterations | iterations / s | JS-4 | EMA JS-4 "
    runs_at = table.index(head + "| copies | unique | min to ≤ 1 | min to ≤ 0.01 |")
    for line, row in zip(table[runs_at + 2 : runs_at + 4], result["runs"], strict=True):
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        last = evaluations(out / row["run"])[-1]
        assert cells[:5] == [row["run"], row["recipe"], "0", "ok", str(row["iterations"])]
        assert cells[7] == f"{row['ema_js4']:.3f}"
        # The EMA generator's copy and unique rates, as its last evaluation logged them.
        assert (
            row["copy_rate"] == last["ema_copy_rate"] and cells[8] == f"{last['ema_copy_rate']:.1%}"
        )
        assert row["unique_rate"] == last["ema_unique_rate"]
        assert cells[9] == f"{last['ema_unique_rate']:.1%}"
        assert cells[10:] == [f"{row['minutes_to_target'][0]:.2f}", "—"]
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


def _logged_run(run_dir, **evaluation):
    """A run folder whose metrics.jsonl holds one training row and one evaluation at 1 min."""
    run_dir.mkdir()
    rows = [{"iter": 10, "time": 60.0, "wasserstein": 1.0}, {"iter": 10, "time": 60.0,
            "js1": 0.1, **evaluation}]  # fmt: skip
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run_dir


def test_the_heldout_reference_keeps_a_copier_from_winning(tmp_path):
    from textgan.studies.report import compare_run

    # A recipe that copies its training lines: close to them, no closer to unseen text.
    copier = _logged_run(tmp_path / "copier", js4=0.5, ema_js4=0.30, ema_heldout_js4=0.60,
                         ema_copy_rate=0.9, ema_unique_rate=0.6, copy_rate=1.0)  # fmt: skip
    learner = _logged_run(tmp_path / "learner", js4=0.5, ema_js4=0.40, ema_heldout_js4=0.45,
                          ema_copy_rate=0.0, ema_unique_rate=1.0, copy_rate=0.0)  # fmt: skip
    for reference, target, winner in (("train", 0.35, "copier"), ("heldout", 0.5, "learner")):
        rows = [
            compare_run(run, run.name, 0, "ok", [target], reference) for run in (copier, learner)
        ]
        assert min(rows, key=lambda r: r["quality"])["recipe"] == winner
        assert [r["minutes_to_target"] for r in rows] == (
            [[1.0], [None]] if winner == "copier" else [[None], [1.0]]
        )
    # The rates are the EMA generator's, the one quality scores.
    assert [(r["copy_rate"], r["unique_rate"]) for r in rows] == [(0.9, 0.6), (0.0, 1.0)]
    assert [(r["heldout_js4"], r["ema_heldout_js4"]) for r in rows] == [(None, 0.6), (None, 0.45)]


def test_compare_against_heldout_lines_then_report_against_training_lines(tmp_path):
    from textgan.studies.compare import compare_study
    from textgan.studies.figure import time_figure
    from textgan.studies.report import quality

    cfg = _compare_config(
        tmp_path, "base=tiny", minutes=0.03, eval_minutes=0.01, targets=(1.0,), threads=1,
        device="cpu", eval_samples=64, reference="heldout",
    )  # fmt: skip
    study = tmp_path / "study"
    result = compare_study(cfg, study, progress=False, echo=lambda _: None)
    (row,) = result["runs"]
    last = [r for r in read_rows(study / "base-s0" / "metrics.jsonl") if "js1" in r][-1]
    assert result["settings"]["reference"] == "heldout"
    assert row["quality"] == last["ema_heldout_js4"]
    assert result["floors"]["heldout_js4"] == last["floor_heldout_js4"] != last["floor_js4"]
    table = (study / "study.md").read_text()
    assert "| final EMA held-out JS-4 | copies | unique |" in table
    assert f"| real vs real (floor) | | {last['floor_heldout_js4']:.3f} |" in table
    line = time_figure(result, study).axes[0].get_lines()[0]
    assert line.get_ydata()[-1] == quality(last, "heldout")
    # The same runs, read against the training lines.
    res = _cli("study", "report", study, "--reference", "train")
    assert res.returncode == 0, res.stderr
    rebuilt = json.loads((study / "study.json").read_text())
    assert rebuilt["settings"]["reference"] == "train"
    assert rebuilt["settings"]["anchors"] == []
    assert rebuilt["runs"][0]["quality"] == last["ema_js4"]
    assert "| final EMA JS-4 | copies | unique |" in res.stdout
    assert "JS-4 against the training lines (the paper's protocol)." in res.stdout
    # Published curves drawn beside the run, on an axis in hours; an unknown name is one line.
    res = _cli("study", "report", study, "--anchors", "ttur-2017")
    assert res.returncode == 0, res.stderr
    rebuilt = json.loads((study / "study.json").read_text())
    assert rebuilt["settings"]["anchors"] == ["ttur-2017"]
    axes = time_figure(rebuilt, study).axes[0]
    assert axes.get_xlabel() == "wall-clock hours" and axes.get_xscale() == "log"
    run_line, *published = axes.get_lines()
    assert run_line.get_xdata()[-1] == pytest.approx(last["time"] / 3600)
    assert [list(line.get_xdata()) for line in published[:2]] == [[3, 5, 10, 20]] * 2
    assert [list(line.get_ydata()) for line in published[:2]] == [
        [0.488, 0.461, 0.427, 0.400],
        [0.471, 0.437, 0.403, 0.384],
    ]
    assert [line.get_label() for line in published[:2]] == [
        "WGAN-GP (original recipe) [ttur-2017]",
        "WGAN-GP (TTUR recipe) [ttur-2017]",
    ]
    assert any("read off TTUR" in text.get_text() for text in axes.texts)
    res = _cli("study", "report", study, "--anchors", "ttur-2016")
    _assert_one_line_error(res, "no published curves called ttur-2016; known: ttur-2017")
    # 'none' takes them away again.
    assert _cli("study", "report", study, "--anchors", "none").returncode == 0
    assert json.loads((study / "study.json").read_text())["settings"]["anchors"] == []


def test_heldout_reference_needs_heldout_lines_beyond_the_floors(tmp_path):
    from textgan.studies.compare import compare_study

    # pydocs holds out 317 lines; 640 samples evaluate on all of them, and none is left.
    cfg = _compare_config(tmp_path, "a=tiny", reference="heldout")
    message = "holds out 317: use --eval-samples 158 or fewer"
    with pytest.raises(UserError, match=message):
        compare_study(cfg, tmp_path / "s", progress=False, echo=lambda _: None)
    assert not (tmp_path / "s").exists()
    with pytest.raises(UserError, match="--reference must be one of train, heldout, got 'dev'"):
        _compare_config(tmp_path, "a=tiny", reference="dev").validate()


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


def test_iters_help_says_it_also_moves_a_linear_decay():
    from click.testing import CliRunner

    from textgan.cli import main

    unset = {
        "compare": "a linear recipe's fitted to --minutes as --fit-iters does, another's its own",
        "lipschitz": "the preset's",
    }
    for command, base in (("compare", "recipe"), ("lipschitz", "preset")):
        text = " ".join(CliRunner().invoke(main, ["study", command, "--help"]).output.split())
        assert (
            "--iters INTEGER Set every run's train.iters: it stops there if its budget lasts, "
            f"and a --lr-decay linear {base}'s rate falls to 0 there [{unset[command]}]."
        ) in text


def test_a_linear_recipe_fits_its_iterations_to_the_budget_unless_iters_fix_them(tmp_path):
    from textgan.studies.compare import _compare_layers
    from textgan.studies.recipes import parse_named_recipe

    linear, constant = (parse_named_recipe(t) for t in ("lin=small", "const=small-v1"))
    fixed = _compare_config(tmp_path, "lin=small", iters=500)
    for cfg, recipe, fit, iters in (
        (_compare_config(tmp_path, "lin=small"), linear, True, 18_000),
        (_compare_config(tmp_path, "const=small-v1"), constant, False, 15_000),
        (fixed, linear, False, 500),
    ):
        train = _compare_layers(cfg, recipe, 0, tmp_path / "run")["train"]
        assert (train["fit_iters"], train["iters"]) == (fit, iters)
    with pytest.raises(UserError, match=r"train\.fit_iters is set by the study for every run"):
        parse_named_recipe("x=small:train.fit_iters=false")


def test_compare_passes_the_fit_to_its_runs(tmp_path):
    """A linear recipe's run fits its iterations to the study's budget and records them; a
    constant one keeps its own (nothing here depends on how fast this machine is)."""
    from textgan.studies.compare import compare_study

    cfg = _compare_config(
        tmp_path, "lin=tiny:train.lr_decay=linear", "const=tiny", minutes=0.2, eval_minutes=0.05,
        targets=(1.0,), parallel=2, threads=1, device="cpu", eval_samples=64,
    )  # fmt: skip
    result = compare_study(cfg, tmp_path / "study", progress=False, echo=lambda _: None)
    assert result["settings"]["fit_iters"] == ["lin"]
    lin, const = (tmp_path / "study" / f"{name}-s0" for name in ("lin", "const"))
    fit = json.loads((lin / "fit.json").read_text())
    saved = json.loads((lin / "config.json").read_text())["train"]
    assert saved["iters"] == fit["iters"] and not saved["fit_iters"]
    assert fit["max_minutes"] == 0.2 and fit["counts"]["eval"] == 4  # 10.8 s: 3 s grid + last
    assert result["runs"][0]["iterations"] <= fit["iters"]
    assert json.loads((const / "config.json").read_text())["train"]["iters"] == 400
    assert not (const / "fit.json").exists()


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
    # It had been interrupted (Ctrl-C) and was resumed past its budget: ok now.
    recorded = json.loads((study / "study.json").read_text())
    recorded["runs"][0]["status"] = "interrupted before its budget"
    (study / "study.json").write_text(json.dumps(recorded))
    result = rebuild_report([study], targets=[1.0, 0.1])
    assert json.loads((study / "study.json").read_text()) == result
    (row,) = result["runs"]
    assert row["run"] == "base-s0" and row["iterations"] == later["iter"]
    assert row["ema_js4"] == 0.05 and row["minutes_to_target"][1] == 10.0
    assert result["settings"]["minutes"] == 0.03 and result["settings"]["targets"] == [1.0, 0.1]
    table = (study / "study.md").read_text()
    assert table == compare_markdown(result) and "| base-s0 | base | 0 | ok |" in table
    assert "; 10 min of training per run," in table  # the run as it is, not the budget
    # Another study of another recipe, measured alike: one table over both, runs by path.
    _study_copy(study, tmp_path / "other", settings__recipes={"wide": "tiny:model.dim=64"})
    other = json.loads((tmp_path / "other" / "study.json").read_text())
    other["runs"][0].update(recipe="wide", status="interrupted before its budget")
    (tmp_path / "other" / "study.json").write_text(json.dumps(other))
    # Its run was interrupted after 0.6 s of its 1.8 (and not resumed): it stays so.
    cut = tmp_path / "other" / "base-s0" / "metrics.jsonl"
    first = next(r for r in read_rows(cut) if "wasserstein" in r)
    cut.write_text(json.dumps({**first, "time": 0.6}) + "\n")
    both = rebuild_report([study, tmp_path / "other"], tmp_path / "both")
    statuses = [r["status"] for r in both["runs"]]
    assert statuses == ["ok", "interrupted before its budget"]
    assert "; 0.01–10 min of training per run," in compare_markdown(both)
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
    # The same name and spec, other settings (a preset changed between the studies): refused.
    _study_copy(study, tmp_path / "changed")
    run_config = tmp_path / "changed" / "base-s0" / "config.json"
    trained = json.loads(run_config.read_text())
    trained["lipschitz"]["loss"] = "hinge"
    trained["train"].update(seed=5, run_dir="elsewhere", iters=9)  # per run: not compared
    run_config.write_text(json.dumps(trained))
    message = "recipe base trained other settings in {} (lipschitz.loss: 'wgan' against 'hinge')"
    with pytest.raises(UserError, match=re.escape(message.format(tmp_path / "changed"))):
        rebuild_report([study, tmp_path / "changed"], tmp_path / "out-changed")
    trained["lipschitz"]["loss"] = "wgan"
    run_config.write_text(json.dumps(trained))
    assert len(rebuild_report([study, tmp_path / "changed"], tmp_path / "alike")["runs"]) == 2


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
        # The same recipe on another schedule: its iterations fitted to the budget there.
        ("fitted", {"settings__fit_iters": ["a"]}, "recipe a fitted its iterations to the budget "
         "in one study and not in"),
    ):  # fmt: skip
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
