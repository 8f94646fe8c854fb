"""The temperature sweep and ``sample --baseline``, on the built-in pydocs corpus."""

import json

import pytest
from click.testing import CliRunner

import textgan
from textgan.cli import main
from textgan.metrics.scoring import Target, score_lines
from textgan.studies.sweep import (
    _curves,
    _legend_name,
    _point_labels,
    _setting_name,
    parse_temperatures,
    parse_truncations,
)

N = 32  # of 317 held-out pydocs lines: fast, and leaves lines for the reverse LM
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> str:
    data = str(tmp_path_factory.mktemp("data"))
    textgan.prepare("pydocs", data_dir=data)
    return data


@pytest.fixture(scope="module")
def run_dir(data_dir, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "tiny"
    textgan.fit(
        {"corpus": "pydocs", "data_dir": data_dir},
        preset="tiny",
        train={"iters": 20, "eval_every": 20, "ckpt_every": 20, "run_dir": str(run)},
    )
    return run


def _cli(*args):
    return CliRunner().invoke(main, [*args, "--no-progress"])


def _sweep(data_dir, *args, n=N):
    return _cli("sweep", *args, "--corpus", "pydocs", "--data-dir", data_dir, "-n", str(n))


def test_kn5_sweep_writes_its_table_and_figure(data_dir, tmp_path):
    res = _sweep(data_dir, "kn5", "--temperatures", "1.2,0.5", "--out", str(tmp_path))
    assert res.exit_code == 0, res.output
    assert res.output.split() == [
        str(tmp_path / f) for f in ("sweep.json", "sweep.md", "sweep.png")
    ]
    result = json.loads((tmp_path / "sweep.json").read_text())
    rows = result["rows"]
    assert [(r["source"], r["temperature"]) for r in rows] == [("kn5", 0.5), ("kn5", 1.2)]
    assert result["n_samples"] == N and result["samples_per_s"]["kn5"] > 0
    # A colder n-gram model writes more likely, and more repetitive, lines.
    assert rows[0]["lm_bits"] < rows[1]["lm_bits"]
    assert rows[0]["distinct4"] < rows[1]["distinct4"]
    target = Target(corpus="pydocs", data_dir=data_dir)
    floor = score_lines(None, target, n=N)
    assert result["floor"]["js4"] == floor["floor_js4"]
    assert result["floor"]["reverse_lm_bits"] == floor["floor_reverse_lm_bits"]
    table = (tmp_path / "sweep.md").read_text().splitlines()
    assert table[2].startswith("| source | T | truncation | JS-1 | JS-2 | JS-3 | JS-4 | LM bits |")
    cells = [line.split(" | ") for line in table[4:7]]
    assert [c[1] for c in cells] == ["0.5", "1.2", ""]
    assert [c[2] for c in cells] == ["", "", ""]  # a baseline has no noise to truncate
    assert cells[0][7] == f"{rows[0]['lm_bits']:.4f}"
    assert cells[2][0] == f"| real ({N} held-out lines)"
    assert cells[2][6] == f"{floor['floor_js4']:.4f}"
    assert (tmp_path / "sweep.png").read_bytes().startswith(PNG)


def test_a_sweep_set_is_what_sample_baseline_writes(data_dir, tmp_path):
    """The same seed, temperature and N give the same lines, so the same scores."""
    res = _sweep(data_dir, "kn5", "--temperatures", "0.7", "--seed", "5", "--out", str(tmp_path))
    assert res.exit_code == 0, res.output
    row = json.loads((tmp_path / "sweep.json").read_text())["rows"][0]
    args = ["--corpus", "pydocs", "--data-dir", data_dir, "-n", str(N), "--seed", "5"]
    lines = _cli("sample", "--baseline", "kn5", *args, "--temperature", "0.7").output
    report = score_lines(
        lines.splitlines(), Target(corpus="pydocs", data_dir=data_dir), n=N, seed=5
    )
    assert {k: report[k] for k in ("js4", "lm_bits", "self_bleu4")} == {
        k: row[k] for k in ("js4", "lm_bits", "self_bleu4")
    }


def test_a_run_and_the_baseline_in_one_sweep(data_dir, run_dir, tmp_path):
    out = tmp_path / "both"
    res = _sweep(
        data_dir,
        str(run_dir),
        "--baseline",
        "kn5",
        "--temperatures",
        "1",
        "--truncations",
        "0.1,1",
        "--out",
        str(out),
    )
    assert res.exit_code == 0, res.output
    result = json.loads((out / "sweep.json").read_text())
    sets = [(r["source"], r["kind"], r["temperature"], r["truncation"]) for r in result["rows"]]
    assert sets == [
        (str(run_dir), "run", "argmax", None),
        (str(run_dir), "run", "argmax", 1.0),  # loosest first: the curve leaves plain noise
        (str(run_dir), "run", "argmax", 0.1),
        (str(run_dir), "run", 1.0, None),
        ("kn5", "baseline", 1.0, None),
    ]
    assert result["truncations"] == [1.0, 0.1]
    assert all(v > 0 for v in result["samples_per_s"].values())
    assert all(0 <= r["js1"] <= 1 and r["lm_bits"] > 0 for r in result["rows"])
    # Each set is what `textgan sample` writes with the same settings.
    lines = textgan.sample(run_dir, N, truncation=0.1)
    report = score_lines(lines, Target(corpus="pydocs", data_dir=data_dir), n=N)
    assert report["self_bleu4"] == result["rows"][2]["self_bleu4"]
    table = (out / "sweep.md").read_text()
    assert "| argmax |  |" in table and "| argmax | 0.1 |" in table and "| 1 |  |" in table
    assert (out / "sweep.png").read_bytes().startswith(PNG)
    # One run alone: the figure goes to RUN/sweep.
    assert _sweep(data_dir, str(run_dir), "--temperatures", "1").exit_code == 0
    assert (run_dir / "sweep" / "sweep.png").is_file()


def test_a_runs_curves_are_its_truncations_and_its_temperatures():
    def row(t, tau=None):
        return {"temperature": t, "truncation": tau}

    run = [row("argmax"), row("argmax", 1.0), row("argmax", 0.5), row(0.7), row(1.2)]
    curves = _curves(run)
    assert [knob for knob, _ in curves] == ["truncation", "temperature"]
    assert [_setting_name(r) for r in curves[0][1]] == ["argmax", "τ=1", "τ=0.5"]
    assert [_setting_name(r) for r in curves[1][1]] == ["argmax", "T=0.7", "T=1.2"]
    assert _curves(run[:3]) == [("truncation", run[:3])]  # --temperatures gave nothing new
    assert _curves([run[0], *run[3:]]) == [("", [run[0], *run[3:]])]  # no truncations
    kn5 = [row(0.5), row(1.0)]
    assert _curves(kn5) == [("", kn5)]


@pytest.mark.parametrize("bad", ["0", "-0.5", "nan", "inf", "warm", "0.5,,1", ""])
def test_bad_temperatures_are_one_line(data_dir, bad):
    res = _sweep(data_dir, "kn5", "--temperatures", bad)
    assert res.exit_code == 2, res.output
    assert res.output.startswith("textgan: error: --temperatures: ") and res.output.count("\n") == 1


def test_temperatures_are_sorted_once_each():
    assert parse_temperatures("1.2, 0.5,1,0.5") == [0.5, 1.0, 1.2]
    assert parse_truncations("0.25,2, 1,2") == [2.0, 1.0, 0.25]


@pytest.mark.parametrize("bad", ["0", "-1", "nan", "tight"])
def test_bad_truncations_are_one_line(data_dir, bad):
    res = _sweep(data_dir, "kn5", "--truncations", bad)
    assert res.exit_code == 2, res.output
    assert res.output.startswith("textgan: error: --truncations: ") and res.output.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "n", "message"),
    [
        (["no/such/run"], N, "no run or checkpoint at no/such/run; give a run directory,"),
        ([], N, "nothing to sweep: give a run directory or a baseline (kn5)"),
        (["kn5"], 317, "-n 317 leaves no held-out line for the reverse LM score (the corpus"),
    ],
)
def test_missing_runs_and_bad_n_are_one_line(data_dir, args, n, message, tmp_path):
    res = _sweep(data_dir, *args, "--temperatures", "1", "--out", str(tmp_path), n=n)
    assert res.exit_code == 2, res.output
    assert message in res.output and res.output.count("\n") == 1


def test_sample_baseline_writes_n_reproducible_lines(data_dir, tmp_path):
    args = ["sample", "--baseline", "kn5", "--corpus", "pydocs", "--data-dir", data_dir, "-n", "25"]
    first, again = _cli(*args, "--seed", "3"), _cli(*args, "--seed", "3")
    assert first.exit_code == 0, first.output
    lines = first.output.splitlines()
    assert len(lines) == 25 and first.output == again.output
    assert len(set(lines)) > 20  # T = 1 by default: not one line repeated
    assert _cli(*args, "--seed", "4").output != first.output
    out = tmp_path / "kn5.txt"
    assert _cli(*args, "--seed", "3", "--out", str(out)).exit_code == 0
    assert out.read_text(encoding="utf-8") == first.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--baseline", "kn5", "--corpus", "pydocs", "--run", "runs/x"], "not both"),
        (["--baseline", "kn5"], "--baseline and --corpus go together"),
        (["--baseline", "kn6", "--corpus", "pydocs"], "unknown baseline 'kn6'; choose one of kn5"),
    ],
)
def test_sample_baseline_errors_are_one_line(data_dir, args, message):
    res = _cli("sample", *args, "--data-dir", data_dir)
    assert res.exit_code == 2, res.output
    assert message in res.output and res.output.count("\n") == 1


def test_figure_labels_each_point_unless_a_curve_coincides():
    rows = [{"temperature": t} for t in ("argmax", 0.5, 1.2)]  # no truncation key: old sweeps
    span = [3.0, 1.0]  # the figure's ranges of LM and reverse-LM bits
    spread = _point_labels(rows, [1.4, 2.0, 2.5], [3.3, 3.0, 3.0], span)
    assert [label for label, *_ in spread] == ["argmax", "T=0.5", "T=1.2"]
    tight = _point_labels(rows, [4.47, 4.48, 4.49], [3.90, 3.91, 3.92], span)
    assert tight == [("argmax … T=1.2", 4.47, 3.92, -4)]  # one label, written to the left
    cut = [{"temperature": "argmax", "truncation": t} for t in (None, 2.0, 1.0, 0.25)]
    grouped = _point_labels(cut, [5.44, 5.43, 5.38, 5.45], [4.85, 4.81, 4.85, 5.08], span)
    assert grouped == [("argmax … τ=1", 5.38, 4.85, -4), ("τ=0.25", 5.45, 5.08, 4)]


def test_figure_legend_names_a_checkpoint_by_its_run():
    assert _legend_name("runs/bw/checkpoints/iter_0015000") == "bw @ iter_0015000"
    assert _legend_name("runs/bw") == "bw"
    assert _legend_name("kn5") == "kn5"
