"""The network variants of the registries (``textgan/nn/windows.py``, ``attention.py``,
``any_length.py``): their shapes, what they compute, how they start, that each row's score and
its input gradient depend on that row alone, and that they take the general critic step.
(``tests/test_registry.py`` runs the contract, a few iterations and a bit-for-bit resume of
every registered name.)"""

import pytest
import torch

from textgan import config as C
from textgan.nn import fast
from textgan.nn.any_length import POSITION_FEATURES, positions
from textgan.nn.attention import SelfAttention, attended
from textgan.nn.networks import Critic, Generator, count_parameters
from textgan.nn.registry import CRITICS, make_critic, make_generator

pytestmark = pytest.mark.usefixtures("one_thread")

V, L = 11, 8
NEW_CRITICS = sorted(set(CRITICS) - {"paper"})


def _model(**kw):
    return C.ModelConfig(**{"vocab_size": V, "seq_len": L, "dim": 16, "blocks": 2, **kw})


def _rows(n=4, length=L, seed=2):
    x = torch.randn(
        n, V, length, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )
    return torch.softmax(x, dim=1)


def _same_seed(build, cfg):
    torch.manual_seed(0)
    return build(cfg)


# -- windows -----------------------------------------------------------------------------------


def test_the_windows_critic_adds_a_window_score_per_block_to_the_global_head():
    cfg = _model(critic="windows", critic_blocks=3)
    d = _same_seed(make_critic, cfg).double()
    paper = _same_seed(Critic, cfg).double()
    assert len(d.windows) == 3 and [h.out_channels for h in d.windows] == [1, 1, 1]
    # Built after the same seed, its paper part is the paper critic.
    for name, value in paper.state_dict().items():
        assert torch.equal(d.state_dict()[name], value), name
    x = _rows()
    h, local = d.input(x), 0
    for block, head in zip(d.blocks, d.windows, strict=True):
        h = block(h)
        local = local + head(h)[:, 0].mean(dim=1)  # the mean of every position's score
    with torch.no_grad():
        torch.testing.assert_close(d(x), paper(x) + local)
        assert not torch.allclose(d(x), paper(x))
    # Without blocks, one head scores the input convolution's features.
    d0 = make_critic(_model(critic="windows", critic_blocks=0)).double()
    with torch.no_grad():
        global_score = d0.output(d0.input(x).flatten(1)).squeeze(1)
        torch.testing.assert_close(d0(x), global_score + d0.windows[0](d0.input(x)).mean((1, 2)))


# -- attention ---------------------------------------------------------------------------------


def test_self_attention_is_sagans_and_mixes_positions_not_rows():
    torch.manual_seed(0)
    att = SelfAttention(16).double()
    assert (att.query.out_channels, att.key.out_channels, att.value.out_channels) == (2, 2, 16)
    h = torch.randn(3, 16, L, dtype=torch.float64)
    torch.testing.assert_close(att(h), h)  # γ = 0: the identity
    with torch.no_grad():
        att.gamma.fill_(0.7)
    q, k, v = att.query(h), att.key(h), att.value(h)
    for b in range(3):
        for i in range(L):
            w = torch.softmax(torch.stack([q[b, :, i] @ k[b, :, j] for j in range(L)]), 0)
            want = h[b, :, i] + 0.7 * sum(w[j] * v[b, :, j] for j in range(L))
            torch.testing.assert_close(att(h)[b, :, i], want)
    # Without positional information, permuting the positions permutes the output.
    perm = torch.randperm(L, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(att(h[:, :, perm]), att(h)[:, :, perm])


@pytest.mark.parametrize(("blocks", "middle"), [(0, 0), (1, 1), (2, 1), (5, 3)])
def test_attention_comes_after_the_middle_residual_block(blocks, middle):
    torch.manual_seed(0)
    g = make_generator(_model(generator="attn", blocks=blocks)).double()
    with torch.no_grad():
        g.attention.gamma.fill_(1.0)
    h = torch.randn(2, 16, L, dtype=torch.float64)
    want = g.blocks[middle:](g.attention(g.blocks[:middle](h)))
    torch.testing.assert_close(attended(g.blocks, g.attention, h), want)
    torch.testing.assert_close(g.trunk(h), want)


@pytest.mark.parametrize(
    ("make", "paper_class"), [(make_generator, Generator), (make_critic, Critic)]
)
def test_attention_networks_start_as_the_paper_networks(make, paper_class):
    """γ starts at 0 and the paper layers are built first: after the same seed, the same weights
    and the same outputs; an open gate changes them."""
    cfg = _model(generator="attn", critic="attn")
    net, paper = _same_seed(make, cfg), _same_seed(paper_class, cfg)
    assert net.attention.gamma.detach().item() == 0.0
    for name, value in paper.state_dict().items():
        assert torch.equal(net.state_dict()[name], value), name
    assert set(net.state_dict()) - set(paper.state_dict()) == {
        f"attention.{p}" for p in ("gamma", "query.weight", "query.bias", "key.weight",
                                   "key.bias", "value.weight", "value.bias")
    }  # fmt: skip
    x = torch.randn(3, cfg.noise_dim) if make is make_generator else _rows().float()
    with torch.no_grad():
        assert torch.equal(net(x), paper(x))
        net.attention.gamma.fill_(0.5)
        assert not torch.allclose(net(x), paper(x))


# -- any length --------------------------------------------------------------------------------


def test_position_codes_are_sinusoids_that_tell_positions_apart():
    codes = positions(40, torch.zeros((), dtype=torch.float64))
    assert codes.shape == (1, POSITION_FEATURES, 40) and codes.dtype == torch.float64
    half = POSITION_FEATURES // 2
    assert codes[0, :half, 0].tolist() == [0.0] * half  # sin 0
    assert codes[0, half:, 0].tolist() == [1.0] * half  # cos 0
    torch.testing.assert_close(codes[0, 0], torch.sin(torch.arange(40.0, dtype=torch.float64)))
    # A prefix's codes are the longer row's first codes, and no two positions share one.
    torch.testing.assert_close(positions(8, codes)[0], codes[0, :, :8])
    assert torch.cdist(codes[0].T, codes[0].T).add(torch.eye(40)).min() > 0.1


def test_any_length_networks_have_no_layer_sized_by_the_length():
    short, long = _model(seq_len=8), _model(seq_len=32)
    for make, name in ((make_generator, "generator"), (make_critic, "critic")):
        short_net = make(C.ModelConfig(**{**short.__dict__, name: "any-length"}))
        long_net = make(C.ModelConfig(**{**long.__dict__, name: "any-length"}))
        assert short_net.length_agnostic
        assert count_parameters(short_net) == count_parameters(long_net)
        assert {k: v.shape for k, v in short_net.state_dict().items()} == {
            k: v.shape for k, v in long_net.state_dict().items()
        }
    assert not (Generator.length_agnostic or Critic.length_agnostic)


def test_any_length_generator_makes_any_number_of_positions():
    g = _same_seed(make_generator, _model(generator="any-length"))
    z = g.sample_noise(3, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = g.logits(z)
        assert full.shape == (3, V, L)
        assert torch.equal(g.logits(z, length=L), full)
        for length in (1, 5, 40):
            probs = g(z, length=length)
            assert probs.shape == (3, V, length)
            torch.testing.assert_close(probs.sum(1), torch.ones(3, length))
        torch.testing.assert_close(
            g.logits(z, position_major=True, length=5), g.logits(z, length=5)
        )
        # Each position's seed depends on z and on its own position only, whatever the length.
        torch.testing.assert_close(g.seed(z, 5), g.seed(z, 40)[:, :, :5])
    with pytest.raises(ValueError, match="this generator makes 8 positions, not 5"):
        make_generator(_model()).logits(z, length=5)


def test_any_length_critic_pools_positions():
    d = _same_seed(make_critic, _model(critic="any-length")).double()
    assert (d.output.in_features, d.output.out_features) == (16, 1)
    for length in (3, L, 40):
        x = _rows(length=length)
        with torch.no_grad():
            h = d.blocks(d.input(x) + d.positions(positions(length, x)))
            torch.testing.assert_close(d(x), d.output(h.mean(2)).squeeze(1))
            assert d(x).shape == (4,)


# -- every new critic --------------------------------------------------------------------------


@pytest.mark.parametrize("name", NEW_CRITICS)
def test_each_rows_input_gradient_is_its_own_rows_alone(name):
    """The penalties take ‖∇x D‖ per row of the batch's summed scores: that is each row's own
    gradient only if no row's score depends on another row."""
    d = _same_seed(make_critic, _model(critic=name)).double()
    if name == "attn":
        with torch.no_grad():
            d.attention.gamma.fill_(0.5)  # open, so that attention takes part
    x = _rows(5).requires_grad_(True)
    (batch,) = torch.autograd.grad(d(x).sum(), x)
    for b in range(5):
        row = x[b : b + 1].detach().requires_grad_(True)
        (alone,) = torch.autograd.grad(d(row).sum(), row)
        torch.testing.assert_close(batch[b : b + 1], alone)


@pytest.mark.parametrize("name", NEW_CRITICS)
def test_new_critics_take_the_general_step(name):
    lip = C.LipschitzConfig()
    assert fast.fast_loss_supported(make_critic(_model()), lip)
    assert not fast.explicit_grad_supported(make_critic(_model(critic=name)))
    assert not fast.fast_loss_supported(make_critic(_model(critic=name)), lip)
