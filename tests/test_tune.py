import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import optuna
import pytest

from textgan.errors import UserError
from textgan.studies.tune_space import DEFAULT_SPACE, check_space, parse_space

# A space of two cheap levers and a budget of seconds: trials of the tiny preset on pydocs.
SPACE = {
    "train.critic_iters": {"low": 1, "high": 3},
    "train.lr_gen": {"low": 1e-4, "high": 3e-3, "log": True},
}
MINUTES, EVAL_MINUTES = 0.04, 0.01  # 2.4 s of training per trial, evaluated every 0.6 s
# A trial's user attributes from its last evaluation (the EMA generator's values).
ATTRIBUTES = ("js4", "heldout_js4", "copy_rate", "unique_rate")


def _base(preset="tiny", **train):
    from textgan.config import layered_config

    return layered_config(preset, overrides={"corpus": {"corpus": "pydocs"}, "train": train})


# -- the space ---------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["tiny", "small", "paper"])
def test_default_space_is_valid_over_every_preset(preset):
    params = parse_space(DEFAULT_SPACE, "default space")
    check_space(params, _base(preset), "default space")
    assert {p.key for p in params} == set(DEFAULT_SPACE)


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"critic_iters": {"low": 1, "high": 2}}, "'critic_iters' is not a model, lipschitz or"),
        ({"corpus.max_lines": {"low": 1, "high": 2}}, "is not a model, lipschitz or train field"),
        ({"train.critic_itrs": {"low": 1, "high": 2}}, "unknown field train.critic_itrs"),
        ({"train.preset": {"choices": ["tiny"]}}, "unknown field train.preset"),
        ({"train.seed": {"low": 0, "high": 9}}, "train.seed is set by tune for every trial"),
        ({"train.lr": {"low": 1e-4}}, 'needs both "low" and "high"'),
        ({"train.lr": {"low": 1e-3, "high": 1e-4}}, "low must be below high"),
        ({"train.lr": {"low": 0.0, "high": 1e-3, "log": True}}, "a log range needs low > 0"),
        ({"train.lr": {"low": 1e-4, "high": 1e-3, "big": 1}}, "must be {"),
        ({"train.critic_iters": {"low": 1, "high": 2.5}}, "must be a int, got 2.5"),
        ({"train.batch_size": {"choices": []}}, "choices must be a non-empty list"),
        ({"lipschitz.kind": {"low": 1, "high": 2}}, "is not a number"),
        ({"lipschitz.kind": {"choices": ["gp", "wgan"]}}, "must be one of gp"),
        ({"train.batch_size": {"low": 0, "high": 64}}, "train.batch_size = 0: train.batch_size"),
        ({"train.beta1": {"low": 0.5, "high": 1.0}}, "train.beta1 must lie in [0, 1), got 1.0"),
    ],
)
def test_bad_spaces_are_refused(space, message):
    with pytest.raises(UserError, match=re.escape(message)):
        check_space(parse_space(space, "space file s.json"), _base(), "space file s.json")


def test_a_lazy_penalty_is_refused_for_a_critic_without_penalty():
    from textgan.config import layered_config

    base = layered_config("tiny", overrides={"lipschitz": {"kind": "clip"}})
    with pytest.raises(UserError, match=r"train\.penalty_every = 2: --penalty-every 2 needs"):
        check_space(parse_space({"train.penalty_every": {"choices": [1, 2]}}, "s"), base, "s")


def test_sampled_settings_have_the_fields_types_and_repeat_with_the_seed():
    from textgan.studies.tune_space import sample
    from textgan.studies.tune_study import make_sampler

    params = parse_space({**SPACE, "model.dim": {"choices": [16, 32]}}, "s")

    def draws(seed):
        study = optuna.create_study(sampler=make_sampler(seed, 0))
        out = []
        for _ in range(4):
            trial = study.ask()
            study.sampler = make_sampler(seed, trial.number)
            out.append(sample(params, trial))
            study.tell(trial, 0.5)
        return out

    first = draws(0)
    assert first == draws(0) and first != draws(1)
    assert len({json.dumps(d, sort_keys=True) for d in first}) == 4  # no trial repeats another
    for d in first:
        assert isinstance(d["train"]["critic_iters"], int) and 1 <= d["train"]["critic_iters"] <= 3
        assert 1e-4 <= d["train"]["lr_gen"] <= 3e-3 and d["model"]["dim"] in (16, 32)


# -- pieces of the loop ----------------------------------------------------------------------


def test_steps_are_the_indices_of_the_wall_clock_grid():
    from textgan.studies.tune_trial import step_of

    assert [step_of(t, 60.0, 300.0) for t in (60.2, 121.9, 180.0, 299.9)] == [1, 2, 3, 4]
    assert step_of(300.4, 60.0, 300.0) == 5  # the last evaluation, at the budget
    assert step_of(131.0, 60.0, 130.0) == 3  # a budget between grid points: rounded up
    # The last evaluation of a run that ended at its last iteration (a fitted one ends a little
    # before its budget): at the budget's step too, where every trial reports its end.
    assert step_of(290.0, 60.0, 300.0, last=True) == 5
    # A sub-second grid: each evaluation its own step (whole seconds merged them in pairs).
    assert [step_of(t, 0.6, 2.4) for t in (0.61, 1.2, 1.81, 2.45)] == [1, 2, 3, 4]


def _tuners(tmp_path, study, n):
    """``n`` Tuners on one study, as ``n`` tune processes sharing it (heartbeat 1 s)."""
    from textgan.studies.tune import Tuner

    lines = []
    return [Tuner(_config(tmp_path, 2), study, [], tmp_path, lines.append) for _ in range(n)], lines


def test_a_pruned_trial_beats_while_its_run_stops(tmp_path):
    """A pruned trial's run may take a while to save and exit: its heartbeat goes on, so that
    another process sharing the study does not fail it meanwhile; it ends pruned."""
    import threading

    from textgan.studies.runs import Child

    pruner = optuna.pruners.ThresholdPruner(upper=0.0)  # gives up on every value
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage(), pruner=pruner)
    (here, there), _ = _tuners(tmp_path, study, 2)
    trial = study.ask()
    trial.set_user_attr("heartbeat", time.time())
    (tmp_path / "config.json").write_text(json.dumps({"train": {"iters": 100}}))
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text(json.dumps({"iter": 9, "time": 0.7, "js1": 0.5, "ema_js4": 0.9}) + "\n")
    # A run that needs 5 s to stop after SIGTERM, longer than the 3 s a silent trial is given.
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(5)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    here.children[trial.number] = child = Child("trial-0000", proc, tmp_path / "trial.log")
    done = threading.Event()

    def other_process():
        while not done.wait(0.2):
            there._fail_stale()

    watcher = threading.Thread(target=other_process)
    watcher.start()
    try:
        end = here.trial_run._follow(trial, child, metrics)
        here._finish(trial, *end)
    finally:
        done.set()
        watcher.join()
        proc.stdout.close()
    assert end == ("pruned", 0.9, "pruned at evaluation 1, 1 s") and proc.returncode == 0
    (told,) = study.get_trials()
    assert told.state.name == "PRUNED" and told.intermediate_values == {1: 0.9}


def test_a_trial_another_process_failed_meanwhile_is_left_as_it_is(tmp_path):
    """Telling a trial's end after another process failed it (its heartbeat had stopped) raised
    and ended the whole tune process; now it is reported and the trial stays failed."""
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    (tuner,), lines = _tuners(tmp_path, study, 1)
    for end, value in (("pruned", 0.9), ("complete", 0.8), ("failed", None)):
        trial = study.ask()
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)  # by the other process
        tuner._finish(trial, end, value, "why")
        last = study.get_trials()[-1]
        assert last.state.name == "FAIL" and last.user_attrs == {}
        assert lines[-1] == f"tune: trial {trial.number} failed by another process (no heartbeat)"
    assert tuner.failures_in_row == 0


def test_new_rows_are_read_whole_lines_only(tmp_path):
    from textgan.studies.tune_trial import read_new_rows

    path = tmp_path / "metrics.jsonl"
    assert read_new_rows(path, 0) == ([], 0)
    path.write_bytes(b'{"iter": 1}\n{"iter": 2}\n{"iter"')
    rows, offset = read_new_rows(path, 0)
    assert rows == [{"iter": 1}, {"iter": 2}] and offset == 24
    with open(path, "ab") as fh:
        fh.write(b": 3}\n")
    assert read_new_rows(path, offset) == ([{"iter": 3}], 36)


def test_a_diverged_run_is_recognized_by_its_message():
    from textgan.studies.tune_trial import DIVERGED
    from textgan.training.loop import _diverged

    with pytest.raises(UserError) as err:
        _diverged(7, {"critic_loss": float("nan")}, None)
    assert DIVERGED in str(err.value)


def test_a_study_with_other_settings_is_refused():
    from textgan.studies.tune_study import open_study

    storage = optuna.storages.InMemoryStorage()
    open_study(storage, "s", 0, "median", {"minutes": 1.0, "space": SPACE})
    open_study(storage, "s", 0, "median", {"minutes": 1.0, "space": SPACE})  # the same: fine
    with pytest.raises(UserError, match=r"started with other settings \(minutes\)"):
        open_study(storage, "s", 0, "median", {"minutes": 2.0, "space": SPACE})


# -- whole studies ---------------------------------------------------------------------------


def _config(tmp_path, trials, eval_samples=64, **kwargs):
    from textgan.studies.tune import TuneConfig

    space = tmp_path / "space.json"
    space.write_text(json.dumps(SPACE))
    return TuneConfig(
        corpus="pydocs",
        recipe="tiny",
        space=str(space),
        trials=trials,
        minutes=MINUTES,
        eval_minutes=EVAL_MINUTES,
        device="cpu",
        threads=1,
        eval_samples=eval_samples,
        data_dir=str(tmp_path / "data"),
        heartbeat=1.0,
        **kwargs,
    )


def _trials(out):
    study = optuna.load_study(study_name="tune", storage=f"sqlite:///{out / 'optuna.db'}")
    return study.get_trials()


def test_a_trial_that_samples_a_refused_pair_is_pruned_without_running(tmp_path):
    """Each value passes over the base (wgan over ns with gp, r1 over ns), the pair does not:
    the trial is pruned with the reason, and no run starts."""
    from textgan.studies import tune

    space = tmp_path / "pairs.json"
    space.write_text(json.dumps({"lipschitz.loss": {"choices": ["wgan"]},
                                 "lipschitz.kind": {"choices": ["r1"]}}))  # fmt: skip
    cfg = replace(_config(tmp_path, 2), space=str(space), recipe="tiny:lipschitz.loss=ns")
    result = tune.run_tune(cfg, tmp_path / "tune", echo=lambda _: None)
    trials = _trials(tmp_path / "tune")
    assert [t.state.name for t in trials] == ["PRUNED", "PRUNED"]
    assert result["counts"] == {"pruned": 2} and "best" not in result
    why = trials[0].user_attrs["pruned"]
    assert why.startswith("lipschitz.loss wgan cannot be trained with lipschitz.kind r1: ")
    assert not list((tmp_path / "tune").glob("trial-*"))


def test_study_survives_a_killed_trial_continues_and_prunes(tmp_path, monkeypatch):
    from textgan.studies import tune, tune_study, tune_trial
    from textgan.studies.tune_trial import step_of

    out = tmp_path / "tune"
    real_start, killed = tune_trial.start_child, []

    def start_and_kill_the_first(*args, **kwargs):
        child = real_start(*args, **kwargs)
        if not killed:
            os.kill(child.proc.pid, signal.SIGKILL)  # kill -9 of the trial's run
            killed.append(child.name)
        return child

    monkeypatch.setattr(tune_trial, "start_child", start_and_kill_the_first)
    result = tune.run_tune(_config(tmp_path, 2), out, echo=lambda _: None)
    trials = _trials(out)
    states = [t.state.name for t in trials]
    assert states == ["FAIL", "COMPLETE", "COMPLETE"] and result["counts"] == {
        "fail": 1,
        "complete": 2,
    }
    assert trials[0].user_attrs["error"] == "killed by signal 9"
    for t in trials[1:]:
        evals = [r for r in _rows(out / f"trial-{t.number:04d}") if "js1" in r]
        assert t.value == evals[-1]["ema_js4"] and evals[-1]["time"] >= 60 * MINUTES
        reported = {}  # each evaluation at the moment it was due, the first one per step
        for e in evals:
            reported.setdefault(step_of(e["time"], 60 * EVAL_MINUTES, 60 * MINUTES), e["ema_js4"])
        assert t.intermediate_values == reported and len(reported) == len(evals)
        assert max(t.intermediate_values) == round(MINUTES / EVAL_MINUTES)  # the budget's step
        assert {k: t.user_attrs[k] for k in ATTRIBUTES} == {
            k: evals[-1][f"ema_{k}"] for k in ATTRIBUTES
        }
    best = min(trials[1:], key=lambda t: t.value)
    assert result["best"]["trial"] == best.number
    written = json.loads((out / "best.json").read_text())
    assert (
        written
        == result["best"]["recipe"]
        == {
            "train": {"preset": "tiny", **{k.split(".")[1]: v for k, v in best.params.items()}},
            "corpus": {"corpus": "pydocs", "data_dir": str(tmp_path / "data")},
        }
    )

    # A rerun continues the same study up to --trials; a pruner that gives up on every value
    # stops its trial at the first evaluation.
    monkeypatch.setattr(tune_trial, "start_child", real_start)
    monkeypatch.setattr(
        tune_study, "make_pruner", lambda name: optuna.pruners.ThresholdPruner(upper=0.0)
    )
    result = tune.run_tune(_config(tmp_path, 3), out, echo=lambda _: None)
    trials = _trials(out)
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE", "PRUNED"]
    pruned = trials[3]
    assert len(pruned.intermediate_values) == 1 and pruned.params != trials[1].params
    log = (out / "logs" / "trial-0003.log").read_text()
    assert "textgan train: stopped at iteration" in log  # SIGTERM: it saved and stopped early
    assert max(r["time"] for r in _rows(out / "trial-0003")) < 60 * MINUTES

    # The printed recipe trains as a --config file.
    again = tmp_path / "again"
    flags = ["--config", out / "best.json", "--iters", 2, "--run-dir", again, "--device", "cpu"]
    command = [sys.executable, "-m", "textgan", "train", *map(str, flags), "--no-progress"]
    run = subprocess.run(command, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    config = json.loads((again / "config.json").read_text())
    for key, value in result["best"]["params"].items():
        section, name = key.split(".")
        assert config[section][name] == value


def test_a_heldout_objective_is_the_js_against_heldout_lines(tmp_path):
    from textgan.studies import tune
    from textgan.studies.tune_trial import step_of

    out, lines = tmp_path / "tune", []
    result = tune.run_tune(_config(tmp_path, 1, reference="heldout"), out, echo=lines.append)
    (trial,) = _trials(out)
    evals = [r for r in _rows(out / "trial-0000") if "js1" in r]
    assert trial.value == result["best"]["value"] == evals[-1]["ema_heldout_js4"]
    reported = {}
    for e in evals:
        reported.setdefault(step_of(e["time"], 60 * EVAL_MINUTES, 60 * MINUTES), e)
    assert trial.intermediate_values == {s: e["ema_heldout_js4"] for s, e in reported.items()}
    assert {k: trial.user_attrs[k] for k in ATTRIBUTES} == {
        k: evals[-1][f"ema_{k}"] for k in ATTRIBUTES
    }
    assert f"tune: trial 0 complete: EMA held-out JS-4 {trial.value:.3f}" in lines
    # The objective is part of what the study was started with.
    with pytest.raises(UserError, match=r"started with other settings \(reference\)"):
        tune.run_tune(_config(tmp_path, 2), out, echo=lines.append)
    with pytest.raises(UserError, match="holds out 317: use --eval-samples 158 or fewer"):
        tune.run_tune(_config(tmp_path, 1, reference="heldout", eval_samples=317), tmp_path / "x")


def test_a_trial_of_a_linear_decay_fits_its_iterations_to_the_budget(tmp_path):
    """Its run fits and records its iterations, its end is reported at the budget's step as
    every trial's is, and the printed recipe is the trial's (its fitted iterations are not)."""
    from textgan.studies import tune

    out = tmp_path / "tune"
    cfg = replace(_config(tmp_path, 1), recipe="tiny:train.lr_decay=linear", minutes=0.2,
                  eval_minutes=0.05)  # fmt: skip
    result = tune.run_tune(cfg, out, echo=lambda _: None)
    (trial,) = _trials(out)
    run = out / "trial-0000"
    fit = json.loads((run / "fit.json").read_text())
    saved = json.loads((run / "config.json").read_text())["train"]
    assert saved["iters"] == fit["iters"] and not saved["fit_iters"] and fit["max_minutes"] == 0.2
    evals = [r for r in _rows(run) if "js1" in r]
    assert evals[-1]["iter"] <= fit["iters"] and trial.value == evals[-1]["ema_js4"]
    assert max(trial.intermediate_values) == 4 and trial.intermediate_values[4] == trial.value
    assert result["best"]["recipe"]["train"] == {
        "preset": "tiny",
        "lr_decay": "linear",
        **{k.split(".")[1]: v for k, v in trial.params.items()},
    }
    study = optuna.load_study(study_name="tune", storage=f"sqlite:///{out / 'optuna.db'}")
    assert study.user_attrs["textgan"]["fit_iters"] is True  # not so in older studies


def _rows(run_dir: Path) -> list[dict]:
    from textgan.files import read_rows

    return read_rows(run_dir / "metrics.jsonl")


def _tune_cli(tmp_path, out, trials, *extra):
    space = tmp_path / "space.json"
    space.write_text(json.dumps(SPACE))
    args = ["--corpus", "pydocs", "--recipe", "tiny", "--space", space, "--trials", trials,
            "--minutes", MINUTES, "--eval-minutes", EVAL_MINUTES, "--device", "cpu",
            "--threads", 1, "--eval-samples", 64, "--data-dir", tmp_path / "data",
            "--heartbeat", 1, "--out", out, *extra]  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "textgan", "tune", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc")
def test_a_killed_tune_process_does_not_block_two_others_sharing_the_study(tmp_path):
    out = tmp_path / "tune"
    first = _tune_cli(tmp_path, out, 2)
    deadline = time.monotonic() + 300
    while not (out / "logs" / "trial-0000.log").exists():
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.2)
    for pid in [first.pid, *_children(first.pid)]:  # kill -9 of tune and its trial's run
        os.kill(pid, signal.SIGKILL)
    first.wait()
    assert [t.state.name for t in _trials(out)] == ["RUNNING"]  # left behind, stale

    both = [_tune_cli(tmp_path, out, 2), _tune_cli(tmp_path, out, 2)]
    ends = [proc.communicate(timeout=300) for proc in both]
    for proc, (stdout, stderr) in zip(both, ends, strict=True):
        assert proc.returncode == 0, stderr
        assert json.loads(stdout)["train"]["preset"] == "tiny"  # the best recipe, printed
    trials = _trials(out)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert trials[0].state.name == "FAIL" and len(complete) == 2  # 2 trials in all, not 4
    assert "no heartbeat" in "".join(err for _, err in ends)
    for t in complete:
        assert t.user_attrs["run_dir"] == str(out / f"trial-{t.number:04d}")
        assert [r for r in _rows(out / f"trial-{t.number:04d}") if "js1" in r]
    assert all(t.state.name in ("COMPLETE", "FAIL") for t in trials)


def _cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "textgan", "tune", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
    )


def test_cli_bad_inputs_are_one_line_exit_2(tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "unknown.json").write_text(json.dumps({"train.speed": {"low": 1, "high": 2}}))
    for args, message in (
        (["--space", "broken.json"], "space file broken.json is unreadable"),
        (["--space", "unknown.json"], "unknown field train.speed"),
        (["--storage", "nonsense"], "--storage 'nonsense' is not a storage URL"),
        (["--storage", "sqlite:////no/such/dir/s.db"], "cannot open it"),
        (["--storage", "journal:/no/such/dir/s.log"], "the journal file's folder does not exist"),
    ):
        res = _cli("--corpus", "pydocs", "--recipe", "tiny", "--out", "t", *args, cwd=tmp_path)
        assert res.returncode == 2, res.stderr
        assert res.stderr.startswith("textgan: error: ") and message in res.stderr, res.stderr
        assert res.stderr.count("\n") == 1
    code = "import sys; sys.modules['optuna'] = None; from textgan.cli import main; main()"
    res = subprocess.run(
        [sys.executable, "-c", code, "tune", "--corpus", "pydocs"], capture_output=True, text=True
    )
    assert res.returncode == 2 and res.stderr == (
        "textgan: error: textgan tune needs Optuna: pip install 'textgan[tune]'\n"
    )
