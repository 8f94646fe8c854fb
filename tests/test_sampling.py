import math

import numpy as np
import pytest
import torch

from textgan.config import MAX_SEED
from textgan.errors import UserError
from textgan.generation.sampling import NoiseDraws, generate_ids, samples_to_text, truncated_normal
from textgan.nn.networks import Generator, ModelConfig
from textgan.vocab import PAD, UNK, Vocab

TINY = ModelConfig(vocab_size=9, seq_len=5, dim=8, blocks=1, kernel=3, noise_dim=4)


@pytest.fixture(scope="module")
def gen():
    torch.manual_seed(0)
    return Generator(TINY)


@pytest.fixture(scope="module")
def biased():
    """A generator whose output at z = 0 is not flat: zero biases would make it positively
    homogeneous in z (G(az) = a G(z)), so the size of the noise would never change an argmax."""
    torch.manual_seed(0)
    g = Generator(TINY)
    with torch.no_grad():
        for name, p in g.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.5)
    return g


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
    z = NoiseDraws(3, TINY.noise_dim).rows(0, 6)
    assert z.dtype == torch.float32 and abs(float(z.std()) - 1) < 0.5
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
        {"n": 5, "truncation": 0.0},
        {"n": 5, "truncation": math.inf},
        {"n": 5, "seed": -1},
        {"n": 5, "seed": MAX_SEED + 1},
        {"n": 5, "seed": 2**64},
    ],
)
def test_bad_sampling_requests_are_user_errors_at_the_call(gen, kwargs):
    with pytest.raises(UserError):
        generate_ids(gen, **kwargs)  # raised before any iteration


@pytest.mark.parametrize("temperature", [None, 1.0])
def test_a_sample_depends_on_the_seed_and_its_index_not_the_batch_size(gen, temperature):
    whole = _all(gen, 600, temperature=temperature, seed=7, batch_size=1024)
    assert len({row.tobytes() for row in whole}) > 100
    for batch_size in (7, 256, 300):  # inside a draw block, its size, across two blocks
        got = _all(gen, 600, temperature=temperature, seed=7, batch_size=batch_size)
        np.testing.assert_array_equal(got, whole)
    np.testing.assert_array_equal(_all(gen, 50, temperature=temperature, seed=7), whole[:50])
    assert len(_all(gen, 3, temperature=temperature, seed=MAX_SEED)) == 3


def test_no_truncation_and_a_loose_one_change_nothing(biased):
    plain = _all(biased, 300, seed=2)
    np.testing.assert_array_equal(_all(biased, 300, seed=2, truncation=None), plain)
    np.testing.assert_array_equal(_all(biased, 300, seed=2, truncation=50.0), plain)
    # At τ = 2 only the rows with a component beyond ±2 get new noise, so only they may change.
    z = NoiseDraws(2, TINY.noise_dim).rows(0, 300)
    inside = (z.abs() <= 2).all(dim=1).numpy()
    assert 0.5 < inside.mean() < 1
    np.testing.assert_array_equal(_all(biased, 300, seed=2, truncation=2.0)[inside], plain[inside])


def test_truncated_noise_is_redrawn_inside_and_kept_inside():
    plain, cut = NoiseDraws(5, 64).rows(0, 500), NoiseDraws(5, 64, truncation=0.5).rows(0, 500)
    inside = plain.abs() <= 0.5
    assert cut.abs().max() <= 0.5 and 0.2 < inside.float().mean() < 0.5
    assert torch.equal(cut[inside], plain[inside])
    assert (cut[~inside] != plain[~inside]).all()


@pytest.mark.parametrize("tau", [0.25, 1.0, 2.5])
def test_truncated_normal_has_the_moments_of_the_restricted_normal(tau):
    u = torch.from_numpy(np.random.default_rng(0).random(200_000))
    z = truncated_normal(u, tau).numpy()
    pdf = math.exp(-(tau**2) / 2) / math.sqrt(2 * math.pi)
    mass = math.erf(tau / math.sqrt(2))  # P(|z| <= τ)
    variance = 1 - 2 * tau * pdf / mass  # of N(0, 1) restricted to [-τ, τ]
    assert z.min() >= -tau and z.max() <= tau
    assert abs(z.mean()) < 4 * math.sqrt(variance / len(z))
    assert z.var() == pytest.approx(variance, rel=0.02)


def test_tighter_truncation_gives_fewer_distinct_samples(biased):
    distinct = [
        len({row.tobytes() for row in _all(biased, 400, seed=0, truncation=tau)})
        for tau in (None, 2.0, 1.0, 0.5, 0.25, 0.1)
    ]
    assert distinct == sorted(distinct, reverse=True), distinct
    assert distinct[0] > 50 and distinct[-1] == 1, distinct  # at z ≈ 0: one line


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


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    import textgan

    run = tmp_path_factory.mktemp("runs") / "run"
    textgan.fit(
        {"corpus": "pydocs", "data_dir": str(tmp_path_factory.mktemp("data"))},
        preset="tiny",
        train={"iters": 12, "ckpt_every": 12, "eval_every": 12, "run_dir": str(run)},
    )
    return run


def _sample_cli(run, *flags):
    from click.testing import CliRunner

    from textgan.cli import main

    args = ["sample", "--run", str(run), "-n", "20", "--seed", "4", "--device", "cpu", *flags]
    return CliRunner().invoke(main, args, catch_exceptions=False)


def test_sample_uses_the_weight_average_by_default_and_raw_the_trained_weights(tiny_run):
    from textgan.files.checkpoint import EMA_KEY, load_checkpoint
    from textgan.generation.sampling import build_generator, sample_text

    ckpt = load_checkpoint(tiny_run)
    model = ckpt.config["model"]

    def lines_of(weights):
        generator = build_generator(model, weights, ckpt.vocab, "test").eval()
        return [line for batch in sample_text(generator, ckpt.vocab, 20, seed=4) for line in batch]

    ema, raw = lines_of(ckpt.state[EMA_KEY]), lines_of(ckpt.generator)
    assert ema != raw  # twelve steps apart, the average and the weights decode differently

    def cli(*flags):
        result = _sample_cli(tiny_run, *flags)
        assert result.exit_code == 0, result.output
        return result.stdout.splitlines()

    assert cli() == ema
    assert cli("--raw") == raw


def test_sample_truncation_from_the_command_line_and_the_api(tiny_run):
    import textgan

    result = _sample_cli(tiny_run, "--truncation", "0.5", "--temperature", "0.8")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines == textgan.sample(tiny_run, 20, truncation=0.5, temperature=0.8, seed=4)
    assert lines != textgan.sample(tiny_run, 20, temperature=0.8, seed=4)
    plain = _sample_cli(tiny_run).stdout.splitlines()
    assert plain == textgan.sample(tiny_run, 20, seed=4, truncation=None)
    bad = _sample_cli(tiny_run, "--truncation", "inf")
    assert bad.exit_code == 2 and "truncation must be a finite number > 0, got inf" in bad.output
