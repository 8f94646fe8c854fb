import math

import numpy as np
import pytest
import torch

from textgan.errors import UserError
from textgan.models import Generator, ModelConfig
from textgan.sampling import generate_ids, samples_to_text
from textgan.vocab import PAD, UNK, Vocab

TINY = ModelConfig(vocab_size=9, seq_len=5, dim=8, blocks=1, kernel=3, noise_dim=4)


@pytest.fixture(scope="module")
def gen():
    torch.manual_seed(0)
    return Generator(TINY)


def _all(gen, n, **kwargs):
    return np.concatenate(list(generate_ids(gen, n, **kwargs)))


def test_exactly_n_rows_in_batches_within_the_vocabulary(gen):
    batches = list(generate_ids(gen, 10, batch_size=4))
    assert [b.shape for b in batches] == [(4, 5), (4, 5), (2, 5)]
    ids = np.concatenate(batches)
    assert ids.dtype == np.uint8
    assert ids.min() >= 0 and ids.max() < 9


def test_argmax_decoding_of_seeded_noise(gen):
    ids = _all(gen, 6, seed=3)
    z = gen.sample_noise(6, "cpu", torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = gen(z).argmax(dim=1).numpy()
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_array_equal(_all(gen, 6, seed=3), ids)


def test_temperature_sampling_is_seeded_and_differs_from_argmax(gen):
    a = _all(gen, 64, temperature=1.0, seed=1)
    b = _all(gen, 64, temperature=1.0, seed=1)
    c = _all(gen, 64, temperature=1.0, seed=2)
    np.testing.assert_array_equal(a, b)
    assert (a != c).mean() > 0.3
    assert (a != _all(gen, 64, seed=1)).mean() > 0.3


def test_temperature_to_zero_is_argmax(gen):
    np.testing.assert_array_equal(_all(gen, 64, temperature=1e-4, seed=4), _all(gen, 64, seed=4))


def test_temperature_draws_follow_softmax_of_scaled_logits():
    # All weights zero except the output bias: every position has logits = bias.
    g = Generator(TINY)
    with torch.no_grad():
        for p in g.parameters():
            p.zero_()
        g.output.bias.copy_(torch.linspace(-1.0, 2.0, 9))
    for t in (0.5, 2.0):
        ids = _all(g, 4000, temperature=t, batch_size=1500)
        freq = np.bincount(ids.ravel(), minlength=9) / ids.size
        expected = torch.softmax(torch.linspace(-1.0, 2.0, 9) / t, dim=0).numpy()
        np.testing.assert_allclose(freq, expected, atol=0.015)


def test_modes_restored_between_batches(gen):
    gen.train()
    stream = generate_ids(gen, 8, batch_size=4)
    next(stream)
    assert gen.training and torch.is_grad_enabled()
    gen.eval()
    list(generate_ids(gen, 3))
    assert not gen.training
    gen.train()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n": 0},
        {"n": -3},
        {"n": 5, "temperature": 0.0},
        {"n": 5, "temperature": -1.0},
        {"n": 5, "temperature": math.nan},
        {"n": 5, "batch_size": 0},
    ],
)
def test_bad_sampling_requests_are_user_errors_at_the_call(gen, kwargs):
    with pytest.raises(UserError):
        generate_ids(gen, **kwargs)  # raised before any iteration


def test_samples_to_text_strips_trailing_padding_only():
    vocab = Vocab(tuple(ord(c) for c in "ab c"), "chars")  # ids: a=2 b=3 ' '=4 c=5
    ids = np.array([[2, 3, 4, PAD, PAD], [5, PAD, 2, UNK, PAD], [PAD] * 5, [2, 3, 4, 5, 2]])
    assert samples_to_text(ids, vocab) == ["ab ", "ca\ufffd", "", "ab ca"]
    assert samples_to_text(ids, vocab, pad="_")[1] == "c_a\ufffd"


def test_samples_to_text_of_generated_ids_keeps_all_but_trailing_padding(gen):
    vocab = Vocab(tuple(ord(c) for c in "etaoins"), "chars")
    ids = _all(gen, 200, temperature=2.0)
    texts = samples_to_text(ids, vocab, pad="_")
    assert len(texts) == 200
    assert set("".join(texts)) <= set("etaoins_\ufffd")
    trailing = [len(row) - len(np.trim_zeros(row, "b")) for row in ids]
    assert [len(t) for t in texts] == [5 - k for k in trailing]
    assert any(k > 0 for k in trailing) and any("_" in t for t in texts)


def test_sample_uses_the_weight_average_by_default_and_raw_the_trained_weights(tmp_path):
    from click.testing import CliRunner

    import textgan
    from textgan.checkpoint import EMA_KEY, load_checkpoint
    from textgan.cli import main
    from textgan.sampling import build_generator, sample_text

    run = tmp_path / "run"
    textgan.fit(
        {"corpus": "pydocs", "data_dir": str(tmp_path / "data")},
        preset="tiny",
        train={"iters": 12, "ckpt_every": 12, "eval_every": 12, "run_dir": str(run)},
    )
    ckpt = load_checkpoint(run)
    model = ckpt.config["model"]

    def lines_of(weights):
        generator = build_generator(model, weights, ckpt.vocab, "test").eval()
        return [line for batch in sample_text(generator, ckpt.vocab, 20, seed=4) for line in batch]

    ema, raw = lines_of(ckpt.state[EMA_KEY]), lines_of(ckpt.generator)
    assert ema != raw  # twelve steps apart, the average and the weights decode differently

    def cli(*flags):
        args = ["sample", "--run", str(run), "-n", "20", "--seed", "4", "--device", "cpu", *flags]
        result = CliRunner().invoke(main, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout.splitlines()

    assert cli() == ema
    assert cli("--raw") == raw
