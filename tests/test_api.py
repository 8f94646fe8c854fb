"""The public API, importable from ``textgan`` itself, on the built-in corpus."""

import subprocess
import sys

import textgan


def test_import_textgan_stays_light():
    code = "import sys, textgan; print([m for m in ('torch', 'datasets') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_prepare_fit_sample_score_resume(tmp_path):
    data = str(tmp_path / "data")
    corpus = textgan.prepare("pydocs", data_dir=data)
    assert corpus.train.shape[1] == 32 and len(corpus.heldout) == 317
    run_dir = tmp_path / "run"
    result = textgan.fit(
        {"corpus": "pydocs", "data_dir": data},
        preset="tiny",
        train={"iters": 20, "eval_every": 10, "ckpt_every": 10, "run_dir": str(run_dir)},
    )
    assert result.iteration == 20 and result.run_dir == run_dir
    lines = textgan.sample(run_dir, n=7, seed=1)
    assert len(lines) == 7 and lines == textgan.sample(run_dir, n=7, seed=1)
    report = textgan.score(lines, run=run_dir)
    assert report["n_samples"] == 7 and 0 <= report["js1"] <= 1 and "floor_js4" in report
    generator, vocab = textgan.load_generator(run_dir, device="cpu")
    assert isinstance(generator, textgan.Generator) and len(vocab) == generator.cfg.vocab_size
    resumed = textgan.resume(run_dir, iters=30)
    assert resumed.iteration == 30
