from types import SimpleNamespace

import numpy as np
import pytest

from textgan.metrics import METRICS, JSEvaluator, register_metric
from textgan.metrics.lm import KneserNeyLM
from textgan.metrics.registry import Batch, Resources, compute, get_metrics
from textgan.metrics.report import Scorer, encode_samples, format_table
from textgan.vocab import PAD, Vocab, count_symbols, text_to_codes


@pytest.fixture
def scratch_registry():
    """The registry as it is, restored after a test that registers its own metric."""
    saved = dict(METRICS)
    yield
    METRICS.clear()
    METRICS.update(saved)


@pytest.fixture(scope="module")
def prepared(gbw_lines, tmp_path_factory):
    codes = text_to_codes(gbw_lines[:3000], 32)
    vocab = Vocab.from_counts(count_symbols(codes))
    ids = vocab.codes_to_ids(codes)
    return SimpleNamespace(
        train=ids[500:],
        heldout=ids[:500],
        path=tmp_path_factory.mktemp("corpus"),
        vocab=vocab,
        fingerprint="fp",
        key="tiny",
    )


def test_a_new_metric_is_one_registration_shown_beside_its_floor(scratch_registry, prepared):
    seen = {"real": []}

    @register_metric("mean_length", needs=("heldout",), note="mean_length n/a: never")
    def mean_length(batch, heldout):
        seen["real"].append(batch.is_real)
        seen["heldout"] = heldout
        return {"mean_length": float(np.mean(np.sum(batch.ids != PAD, axis=1)))}

    scorer = Scorer.from_prepared(prepared, 2, progress=False)
    samples = encode_samples(["abc", "abcde"], prepared.vocab, 32)
    report = scorer.report(samples, 2, max_n=2)
    real = report["floor_mean_length"]
    assert report["mean_length"] == 4.0 and real > 10  # news lines fill most of 32
    assert seen["real"] == [False, True] and seen["heldout"] is prepared.heldout
    table = format_table(report).splitlines()
    assert table[-1].split() == ["mean_length", "4.0000", f"{real:.4f}"]
    assert list(report)[-2:] == ["floor_word_known", "floor_mean_length"]


def test_registration_refuses_a_taken_name_or_key(scratch_registry):
    with pytest.raises(ValueError, match="registered already"):
        register_metric("js3")(lambda batch: {})
    with pytest.raises(ValueError, match="registered already"):
        register_metric("fresh")(METRICS["lm"].compute)
    with pytest.raises(ValueError, match="unknown metrics"):
        get_metrics(["js", "no_such_metric"])


def test_a_metric_gets_only_what_it_declares_and_returns_only_its_keys(scratch_registry):
    @register_metric(needs=("vocab",))
    def sneaky(batch, vocab):
        return {"sneaky": 1.0, "js1": 0.0}

    batch = Batch(np.ones((1, 4), np.uint8), np.arange(1), False)
    resources = Resources(vocab=lambda: "V", heldout=lambda: pytest.fail("not needed"))
    with pytest.raises(RuntimeError, match="undeclared"):
        compute(get_metrics(["sneaky"]), batch, resources)
    with pytest.raises(KeyError, match="no resource 'lm'"):
        compute(get_metrics(["lm"]), batch, resources)


def test_the_training_evaluator_builds_only_what_its_metrics_need(prepared, monkeypatch):
    monkeypatch.setattr(KneserNeyLM, "for_corpus", lambda *a, **k: pytest.fail("LM built"))
    row = JSEvaluator(prepared, n_samples=100, progress=False)(prepared.heldout[-100:])
    assert sorted(row) == sorted(
        ["n_samples", *(f"{p}js{n}" for p in ("", "floor_") for n in range(1, 5))]
    )
    more = JSEvaluator(prepared, n_samples=100, progress=False, metrics=("js", "word_known"))
    row = more(prepared.heldout[-100:])
    assert 0.5 < row["word_known"] < 1 and 0.5 < row["floor_word_known"] < 1
    assert more.floor == {k: v for k, v in row.items() if k.startswith("floor_")}
