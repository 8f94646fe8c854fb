import json
import re
from dataclasses import asdict

import numpy as np
import pytest
from click.testing import CliRunner

from textgan.cli import main
from textgan.corpus import CorpusConfig, prepare
from textgan.files import atomic_write_text
from textgan.metrics import JSEvaluator
from textgan.metrics.report import Samples, Scorer, encode_samples


@pytest.fixture(scope="module")
def corpus(gbw_files, tmp_path_factory):
    """The first shard prepared under a data folder of its own."""
    root = tmp_path_factory.mktemp("data")
    cfg = CorpusConfig(corpus=str(gbw_files[0]), data_dir=str(root))
    return cfg, prepare(cfg, progress=False)


@pytest.fixture(scope="module")
def other_lines(gbw_files):
    return gbw_files[1].read_text(encoding="utf-8").splitlines()


def _score(*args, input=None):
    return CliRunner().invoke(main, ["score", *args, "--no-progress"], input=input)


def _corpus_args(corpus):
    cfg, _ = corpus
    return ["--corpus", cfg.corpus, "--data-dir", cfg.data_dir]


def _write(path, lines):
    path.write_text("".join(f"{x}\n" for x in lines), encoding="utf-8")
    return str(path)


def test_report_matches_the_evaluator_and_counts_changes(corpus, other_lines, tmp_path):
    _, prepared = corpus
    lines = other_lines[:150]
    lines[0] = "☃☃ snowman"
    res = _score(_write(tmp_path / "s.txt", lines), *_corpus_args(corpus), "-n", "120", "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["n_samples"] == 120 and report["unk_chars"] == 2
    assert report["truncated_samples"] == sum(len(x) > 32 for x in lines[:120])
    ids = encode_samples(lines[:120], prepared.vocab, 32).ids
    for k, v in JSEvaluator(prepared, n_samples=120, progress=False)(ids).items():
        assert report[k] == v
    # Real text from another shard scores near its floor; every metric has one.
    assert abs(report["js4"] - report["floor_js4"]) < 0.1
    assert abs(report["lm_bits"] - report["floor_lm_bits"]) < 0.3
    assert 1.0 < report["lm_bits"] < 4.0 and report["copy_rate"] == 0.0
    metrics = [k for k in report if k.startswith("floor_")]
    assert len(metrics) == 4 + 4 + 1 + 4 + 8 + 4 + 2 + 1 and all(k[6:] in report for k in metrics)


def _samples(ids):
    return Samples(np.asarray(ids), 0, 0)


def test_bad_samples_are_far_from_the_floor(corpus):
    _, prepared = corpus
    scorer = Scorer.from_prepared(prepared, 4, progress=False)
    rng = np.random.default_rng(0)
    noise = rng.integers(2, len(prepared.vocab), size=(100, 32)).astype(prepared.train.dtype)
    report = scorer.report(_samples(noise), 100)
    assert report["js4"] > 0.95 > report["floor_js4"]
    assert report["lm_bits"] > report["floor_lm_bits"] + 2
    assert report["bleu4"] < report["floor_bleu4"]
    repeated = scorer.report(_samples(np.repeat(prepared.heldout[:1], 100, axis=0)), 100)
    assert repeated["unique_rate"] == 0.01 and repeated["self_bleu4"] == pytest.approx(1.0)
    assert repeated["reverse_lm_bits"] > repeated["floor_reverse_lm_bits"] + 1
    copied = scorer.report(_samples(prepared.train[:50]), 50)
    assert copied["copy_rate"] == 1.0


def test_stdin_table_and_real_table(corpus, other_lines):
    res = _score("-", *_corpus_args(corpus), "-n", "50", input="\n".join(other_lines[:80]))
    assert res.exit_code == 0, res.output
    head, _, table = res.output.partition("metric")
    assert "50 samples scored against corpus" in head
    assert "value" in table and "floor (N=50)" in table and "self_bleu5" in table
    fewer = _score("-", *_corpus_args(corpus), "--json", input="\n".join(other_lines[:80]))
    assert json.loads(fewer.output)["n_samples"] == 80  # all of them, floor at 80 too
    real = _score("--real", *_corpus_args(corpus), "-n", "50")
    assert real.exit_code == 0, real.output
    assert "50 real held-out lines" in real.output and "value" not in real.output
    assert real.output.count("\n") == 1 + 1 + 28
    n_heldout = len(corpus[1].heldout)
    everything = _score("--real", *_corpus_args(corpus), "-n", str(n_heldout))
    assert re.search(r"^reverse_lm_bits +n/a$", everything.output, re.M)
    assert re.search(r"^heldout_js4 +n/a$", everything.output, re.M)
    assert everything.output.rstrip().endswith("--holdout)")


def _run_config(cfg: CorpusConfig, vocab_size: int) -> str:
    """A run's config.json with this corpus and every other section at its defaults."""
    model = {"vocab_size": vocab_size}
    return json.dumps({"corpus": asdict(cfg), "model": model, "lipschitz": {}, "train": {}})


def test_run_directory_and_reference_file(corpus, other_lines, tmp_path):
    cfg, prepared = corpus
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(_run_config(cfg, len(prepared.vocab)), encoding="utf-8")
    atomic_write_text(run / "vocab.json", prepared.vocab.dumps())
    samples = _write(tmp_path / "s.txt", other_lines[:60])
    by_run = _score(samples, "--run", str(run), "-n", "60", "--json")
    by_corpus = _score(samples, *_corpus_args(corpus), "-n", "60", "--json")
    assert by_run.exit_code == 0, by_run.output
    assert json.loads(by_run.output) == json.loads(by_corpus.output)
    ref = _write(tmp_path / "ref.txt", other_lines[100:2000])
    res = _score(samples, "--reference", ref, "-n", "60", "--ngrams", "5", "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["reference"] == f"reference {ref}" and 0 < report["floor_js5"] < 1
    # The samples come from the same shard as the reference: real vs real.
    assert abs(report["js3"] - report["floor_js3"]) < 0.1


def test_a_run_whose_corpus_changed_is_refused(corpus, tmp_path):
    cfg, prepared = corpus
    (tmp_path / "config.json").write_text(_run_config(cfg, len(prepared.vocab)), encoding="utf-8")
    atomic_write_text(
        tmp_path / "vocab.json", type(prepared.vocab)(prepared.vocab.symbols[::-1]).dumps()
    )
    res = _score("--real", "--run", str(tmp_path))
    assert res.exit_code == 2 and "another vocabulary" in res.output


@pytest.mark.parametrize(
    ("make", "extra", "message"),
    [
        (lambda p: p.write_bytes(b""), [], "is empty"),
        (lambda p: p.write_bytes(b"ok\nab\x00\x01cd\n"), [], "samples.txt is a binary file (a NUL"),
        (lambda p: p.write_bytes(b"ok\nab\x00\x01cd\n"), [], "NUL byte on line 2"),
        (lambda p: p.write_bytes(b"ok\n\xff\xfe\n"), [], "samples.txt is not UTF-8 text (line 2)"),
        (lambda p: p.write_text("x\n" * 5000), ["-n", "5000"], "held-out split (6"),
        (lambda p: p.write_text("x\n"), ["--ngrams", "0"], "between 1 and 8"),
        (lambda p: p.write_text("x\n"), ["--ngrams", "9"], "between 1 and 8"),
        (lambda p: p.write_text("x\n"), ["--real"], "or --real"),
        (lambda p: p.write_text("x\n"), ["--seed", "-1"], "'--seed': -1 is not in the range"),
        (lambda p: p.write_text("x\n"), ["--seed", str(2**64)], "not in the range 0<=x<="),
        (lambda p: p.write_text("x\n"), ["--seq-len", "0"], "'--seq-len': 0 is not in the"),
        (lambda p: p.write_text("x\n"), ["-n", "0"], "'--n-samples': 0 is not in the range"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(corpus, tmp_path, make, extra, message):
    path = tmp_path / "samples.txt"
    make(path)
    res = _score(str(path), *_corpus_args(corpus), *extra)
    assert res.exit_code == 2, res.output
    assert message in res.output and res.output.count("\n") == 1
    assert res.output.startswith("textgan: error: ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--run", "no/such/run"], "not a run directory"),
        (["--reference", "no/such/file.txt"], "does not exist"),
        (["--corpus", "no/such/corpus.txt"], "no/such/corpus.txt"),
        ([], "one of --corpus, --run, --model or --reference"),
    ],
)
def test_missing_targets_are_one_line_and_exit_2(tmp_path, args, message):
    res = _score(_write(tmp_path / "s.txt", ["hello"]), *args, "--data-dir", str(tmp_path))
    assert res.exit_code == 2, res.output
    assert message in res.output and res.output.count("\n") == 1


def test_missing_samples_file_and_too_short_reference(tmp_path):
    ref = _write(tmp_path / "ref.txt", ["a line", "another"])
    res = _score(str(tmp_path / "nope.txt"), "--reference", ref)
    assert res.exit_code == 2 and "samples file" in res.output and "does not exist" in res.output
    res = _score(_write(tmp_path / "s.txt", ["hi"] * 5), "--reference", ref, "-n", "5")
    assert res.exit_code == 2 and "has 2 lines" in res.output


def test_default_n_is_capped_at_a_small_held_out_split(tmp_path, gbw_lines):
    text = tmp_path / "small.txt"
    _write(text, gbw_lines[:3000])  # 300 held-out lines: fewer than the paper's 640
    samples = tmp_path / "samples.txt"
    _write(samples, gbw_lines[3000:4000])
    args = [str(samples), "--corpus", str(text), "--data-dir", str(tmp_path / "data")]
    res = _score(*args, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["n_samples"] == 300
    res = _score(*args, "-n", "640")  # an explicit N is never lowered
    assert res.exit_code == 2 and "300 lines" in res.output


def test_scoring_more_than_memory_holds_is_refused_before_allocating(corpus, tmp_path, monkeypatch):
    ref = _write(tmp_path / "ref.txt", [f"line {i}" for i in range(100)])
    samples = _write(tmp_path / "s.txt", ["a sample"] * 50)
    res = _score(samples, "--reference", ref, "--seq-len", str(10**11))
    assert res.exit_code == 2 and res.output.count("\n") == 1, res.output
    assert "100 lines of 100,000,000,000 symbols need about" in res.output
    res = _score("--real", "--reference", ref, "-n", str(10**30))
    assert res.exit_code == 2 and "too few to hold out" in res.output
    # A samples file too large for memory at -n 10**30 (here: each symbol costs a terabyte).
    monkeypatch.setattr("textgan.metrics.report.BYTES_PER_SYMBOL", 2**40)
    res = _score(samples, *_corpus_args(corpus), "-n", str(10**30))
    assert res.exit_code == 2 and res.output.count("\n") == 1, res.output
    assert "the samples: 50 lines of 32 symbols need about" in res.output
