import json
import os

import numpy as np
import pytest

from textgan.plots import (
    default_out_dir,
    load_run,
    plot_runs,
    plot_summary,
    run_labels,
    write_run_plots,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ALL_FIGURES = {"training.png", "js.png", "weights.png", "grad_norms.png", "input_grad.png"}


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def make_run(path, kind="gp", iters=30, diagnostics=True, evals=True):
    """A run directory with logs shaped like the training loop's."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"lipschitz": {"kind": kind, "lam": 10.0}}))
    rng = np.random.default_rng(len(kind))
    rows = []
    for i in range(1, iters + 1):
        rows.append(
            {
                "iter": i,
                "time": 0.5 * i,
                "critic_loss": float(-1 / i + rng.normal(0, 0.01)),
                "gen_loss": float(rng.normal()),
                "wasserstein": float(1 / i),
                "gp": 0.1,
                "grad_norm": 1.0,
            }
        )
        if evals and i % 10 == 0:
            js = {f"js{n}": 0.9 / i + 0.1 * n for n in range(1, 5)}
            floor = {f"floor_js{n}": 0.05 * n for n in range(1, 5)}
            rows.append({"iter": i, "time": 0.5 * i, "n_samples": 640, **js, **floor})
    _write_jsonl(path / "metrics.jsonl", rows)
    if diagnostics:
        diags = []
        for i in (10, 20, 30):
            c = 0.01 if kind == "clip" else 0.3
            diags.append(
                {
                    "iter": i,
                    "lipschitz": kind,
                    "weight_hist": {"max_abs": c, "bins": 5, "counts": [40, 5, 10, 5, 40]},
                    "layer_grad_norms": {
                        "names": ["input", "blocks.0", "blocks.1", "output"],
                        "norms": [1e-3 * i, 1e-2, 1e-1, 1.0],
                    },
                    "input_grad": {
                        k: {"mean": 1.0 + 0.1 * j, "std": 0.2}
                        for j, k in enumerate(("real", "fake", "interp"))
                    },
                    "clip_share": 0.8 if kind == "clip" else None,
                }
            )
        _write_jsonl(path / "diagnostics.jsonl", diags)
    return path


def _check_png(path, expect_size=None):
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    if expect_size is not None:
        assert img.shape[:2] == expect_size
    return img


def test_one_run_writes_every_figure_into_its_plots_folder(tmp_path):
    run = make_run(tmp_path / "r1")
    written = plot_runs([run])
    assert {p.name for p in written} == ALL_FIGURES
    assert all(p.parent == run / "plots" for p in written)
    for p in written:
        _check_png(p)
    # training.png: 10 × 9.6 inches at 100 dpi
    _check_png(run / "plots" / "training.png", expect_size=(960, 1000))
    _check_png(run / "plots" / "js.png", expect_size=(700, 1000))
    assert not [p for p in (run / "plots").iterdir() if p.name.startswith(".")]  # no temp files


def test_two_runs_overlaid_with_constraint_labels(tmp_path):
    a = make_run(tmp_path / "a", kind="gp")
    b = make_run(tmp_path / "b", kind="clip")
    out = tmp_path / "cmp"
    written = plot_runs([a, b], out=out)
    assert {p.name for p in written} == ALL_FIGURES and all(p.parent == out for p in written)
    one = _check_png(out / "weights.png")
    assert one.shape[:2] == (520, 700)  # one histogram panel per run: 2 × 2.4 + 0.4 inches
    assert run_labels([load_run(a), load_run(b)]) == ["gp", "clip"]
    # the overlaid figure differs from a single-run one: the second run's colour is drawn
    single = _check_png(plot_runs([a], out=tmp_path / "single")[0])
    both = _check_png(out / "training.png")
    assert not np.array_equal(single, both)


def test_summary_figure_of_two_runs(tmp_path):
    runs = [make_run(tmp_path / "a", kind="gp"), make_run(tmp_path / "b", kind="clip")]
    path = plot_summary(runs, tmp_path / "out" / "summary.png")
    _check_png(path, expect_size=(420, 1300))
    assert path.stat().st_size < 200_000  # small enough for the README


def test_labels_fall_back_to_run_name_and_disambiguate(tmp_path):
    a = make_run(tmp_path / "x1", kind="gp")
    b = make_run(tmp_path / "x2", kind="gp")
    c = make_run(tmp_path / "x3")
    (c / "config.json").unlink()
    assert run_labels([load_run(p) for p in (a, b, c)]) == ["gp (x1)", "gp (x2)", "x3"]


def test_figures_follow_what_the_run_logged(tmp_path):
    run = make_run(tmp_path / "r", diagnostics=False, evals=False)
    assert [p.name for p in plot_runs([run])] == ["training.png"]
    run2 = make_run(tmp_path / "r2", diagnostics=False)
    assert {p.name for p in plot_runs([run, run2], out=tmp_path / "o")} == {
        "training.png",
        "js.png",
    }


def test_js_figure_draws_the_weight_average_beside_the_raw_generator(tmp_path):
    from textgan.plots.figures import js_figure

    plain = make_run(tmp_path / "plain")
    ema = make_run(tmp_path / "ema")
    rows = [json.loads(line) for line in (ema / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        if "js1" in row:
            row.update({f"ema_js{n}": row[f"js{n}"] / 2 for n in range(1, 5)})
    _write_jsonl(ema / "metrics.jsonl", rows)
    runs = [load_run(plain), load_run(ema)]
    fig = js_figure(runs, ["plain", "averaged"])
    for ax in fig.axes[:4]:  # JS-1..4
        lines = {line.get_label(): line for line in ax.get_lines() if line.get_label()[0] != "_"}
        assert sorted(lines) == ["averaged", "averaged, EMA", "plain"]  # no EMA row: no curve
        assert lines["averaged, EMA"].get_linestyle() == ":"
        assert lines["averaged"].get_linestyle() == "-"
        raw, avg = lines["averaged"].get_ydata(), lines["averaged, EMA"].get_ydata()
        np.testing.assert_allclose(avg, np.asarray(raw) / 2)
        assert lines["averaged"].get_color() == lines["averaged, EMA"].get_color()


def test_resumed_rows_and_torn_last_line(tmp_path):
    run = make_run(tmp_path / "r", evals=False, diagnostics=False)
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"iter": 5, "time": 99.0, "wasserstein": 7.0}) + "\n")
        f.write('{"iter": 31, "ti')
    with pytest.warns(UserWarning, match="skipped 1"):
        log = load_run(run)
    assert [r["iter"] for r in log.train] == list(range(1, 31))
    assert log.train[4]["wasserstein"] == 7.0


def test_damaged_logs_and_config_cost_their_own_rows_only(tmp_path):
    run = make_run(tmp_path / "r", evals=False, diagnostics=False)
    with open(run / "metrics.jsonl", "ab") as f:
        f.write(b'\xff{"iter": 40, "time": 1.0, "wasserstein": 3.0}\n')  # one bad byte
        f.write(b"[1, 2]\n")  # JSON, but not a row
        f.write(b'{"iter": 41, "time": 1.0, "wasserstein": 4.0, "note": "\xfe"}\n')
    (run / "config.json").write_text('["gp"]')
    with pytest.warns(UserWarning) as warned:
        log = load_run(run)
    assert [str(w.message) for w in warned] == [
        f"{run / 'metrics.jsonl'}: skipped 2 unreadable line(s)",
        f"run config {run / 'config.json'} must hold an object, not an array; restore or delete "
        "it; naming the run by its folder",
    ]
    assert [r["iter"] for r in log.train] == [*range(1, 31), 41]
    assert log.train[-1]["note"] == "\ufffd" and log.name == "r" and log.constraint is None
    with pytest.warns(UserWarning) as again:
        assert [p.name for p in plot_runs([run])] == ["training.png"]
    assert [str(w.message) for w in again] == [str(w.message) for w in warned]


def test_default_out_dir():
    assert default_out_dir(["runs/a"]) == default_out_dir(["runs/a"])
    assert str(default_out_dir(["runs/a"])) == os.path.join("runs", "a", "plots")
    assert str(default_out_dir(["runs/a", "runs/b"])) == "plots"


def test_write_run_plots_warns_instead_of_raising(tmp_path, recwarn):
    (tmp_path / "empty").mkdir()
    assert write_run_plots(tmp_path / "empty") == []  # nothing logged yet: silently nothing
    assert not recwarn.list
    run = make_run(tmp_path / "r", diagnostics=False)
    (run / "plots").mkdir()
    (run / "plots" / "training.png").mkdir()  # a folder where the PNG goes
    with pytest.warns(UserWarning, match="could not write plots"):
        assert write_run_plots(run) == []


def _cli(*args, cwd=None):
    import subprocess
    import sys

    code = "from textgan.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, cwd=cwd
    )


def test_cli_plot_two_runs_default_out(tmp_path):
    a = make_run(tmp_path / "a", kind="gp")
    b = make_run(tmp_path / "b", kind="sn")
    res = _cli("plot", a, b, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert {p.name for p in (tmp_path / "plots").iterdir()} == ALL_FIGURES
    assert "training.png" in res.stdout


def test_cli_plot_without_metrics_is_one_line_exit_2(tmp_path):
    (tmp_path / "notarun").mkdir()
    res = _cli("plot", tmp_path / "notarun")
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "no metrics.jsonl" in res.stderr
    (tmp_path / "notarun" / "metrics.jsonl").write_text("")
    res = _cli("plot", tmp_path / "notarun")
    assert res.returncode == 2 and "no training or evaluation rows" in res.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_cli_plot_out_not_writable_is_one_line_exit_2(tmp_path):
    run = make_run(tmp_path / "r", diagnostics=False)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        res = _cli("plot", run, "--out", locked)
    finally:
        locked.chmod(0o700)
    assert res.returncode == 2 and res.stderr.startswith("textgan: error: cannot write plots")
    assert res.stderr.count("\n") == 1


def test_cli_plot_out_is_a_file_is_one_line_exit_2(tmp_path):
    run = make_run(tmp_path / "r", diagnostics=False)
    (tmp_path / "afile").write_text("x")
    res = _cli("plot", run, "--out", tmp_path / "afile")
    assert res.returncode == 2 and res.stderr.startswith("textgan: error: cannot write plots")


def test_runs_far_apart_get_a_log_axis_and_close_ones_a_linear_one(tmp_path):
    from textgan.plots.figures import training_figure

    a = make_run(tmp_path / "a", kind="gp", diagnostics=False, evals=False)
    b = make_run(tmp_path / "b", kind="none", diagnostics=False, evals=False)
    rows = [json.loads(line) for line in (b / "metrics.jsonl").read_text().splitlines()]
    for row in rows:  # an unconstrained critic: W and losses hundreds of times larger
        row.update(wasserstein=300.0 * row["wasserstein"], critic_loss=300.0 * row["critic_loss"])
    _write_jsonl(b / "metrics.jsonl", rows)
    runs = [load_run(a), load_run(b)]
    axes = training_figure(runs, run_labels(runs)).axes
    scales = {ax.get_ylabel().split("\n")[0]: ax.get_yscale() for ax in axes if ax.get_ylabel()}
    assert scales["W estimate"] == "log"  # positive everywhere
    assert scales["critic loss"] == "symlog"  # crosses zero
    assert scales["generator loss"] == "linear"  # same scale in both runs
