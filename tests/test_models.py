import math

import pytest
import torch
from torch import nn

from textgan.errors import UserError
from textgan.nn.networks import (
    Critic,
    Generator,
    ModelConfig,
    ResBlock,
    count_parameters,
    init_reference_,
    one_hot,
)

TINY = ModelConfig(vocab_size=7, seq_len=6, dim=8, blocks=2, kernel=3, noise_dim=5)


def test_shapes_and_softmax_rows_sum_to_one():
    torch.manual_seed(0)
    g, d = Generator(TINY), Critic(TINY)
    z = g.sample_noise(4)
    assert z.shape == (4, 5)
    logits, probs = g.logits(z), g(z)
    assert logits.shape == probs.shape == (4, 7, 6)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(4, 6))
    torch.testing.assert_close(probs, torch.softmax(logits, dim=1))
    assert d(probs).shape == (4,)


def test_position_major_logits_are_the_same_values_in_the_other_layout():
    torch.manual_seed(0)
    g = Generator(TINY)
    z = g.sample_noise(4)
    strides = []
    g.blocks.register_forward_pre_hook(lambda module, args: strides.append(args[0].stride()))
    plain, position_major = g.logits(z), g.logits(z, position_major=True)
    torch.testing.assert_close(position_major, plain, rtol=1e-6, atol=1e-6)
    dim, length = TINY.dim, TINY.seq_len
    assert strides == [(dim * length, length, 1), (dim * length, 1, dim)]


def test_sample_noise_is_standard_normal_and_seeded():
    g = Generator(TINY)
    a = g.sample_noise(4000, generator=torch.Generator().manual_seed(3))
    b = g.sample_noise(4000, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert abs(a.mean().item()) < 0.03 and abs(a.std().item() - 1) < 0.03


def test_paper_sizes_match_the_reference_layers():
    cfg = ModelConfig(vocab_size=96)
    g = Generator(cfg)
    assert g.input.weight.shape == (32 * 512, 128)
    assert len(g.blocks) == 5 and g.blocks[0].conv1.weight.shape == (512, 512, 5)
    assert g.output.weight.shape == (96, 512, 1)
    blocks = 5 * 2 * (512 * 512 * 5 + 512)
    assert count_parameters(g) == 128 * 32 * 512 + 32 * 512 + blocks + 96 * 512 + 96
    assert count_parameters(Critic(cfg)) == 96 * 512 + 512 + blocks + 32 * 512 + 1


def test_initialization_is_the_references():
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=50, seq_len=8, dim=64, blocks=1, kernel=5, noise_dim=16)
    for net in (Generator(cfg), Critic(cfg)):
        for m in net.modules():
            if isinstance(m, nn.Conv1d):
                k = m.kernel_size[0]
                bound = math.sqrt(12.0 / (m.in_channels * k + m.out_channels * k))
            elif isinstance(m, nn.Linear):
                bound = math.sqrt(6.0 / (m.in_features + m.out_features))
            else:
                continue
            w = m.weight.detach()
            assert torch.count_nonzero(m.bias) == 0
            assert w.abs().max() <= bound
            assert w.abs().max() > 0.95 * bound  # uniform up to the bound, not narrower
            assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)
    # The square D→D convolutions get exactly Kaiming-uniform's bound sqrt(6 / fan_in).
    conv = Critic(cfg).blocks[0].conv1
    assert math.sqrt(12.0 / (2 * 64 * 5)) == pytest.approx(math.sqrt(6.0 / (64 * 5)))
    assert conv.weight.abs().max() <= math.sqrt(6.0 / (64 * 5))


def test_init_reference_resets_biases():
    lin = nn.Linear(4, 3)
    init_reference_(lin)
    assert torch.count_nonzero(lin.bias) == 0


def test_negative_inputs_stay_on_the_skip_path():
    # relu(x) = 0 for x < 0 and biases are zero, so the branch is 0 and the block returns x.
    # An in-place ReLU would overwrite x and return relu(x) = 0 instead.
    torch.manual_seed(0)
    block = ResBlock(dim=8, kernel=5, res_scale=0.3)
    init_reference_(block)
    x = -torch.rand(3, 8, 6) - 0.1
    original = x.clone()
    out = block(x)
    torch.testing.assert_close(out, original)
    assert torch.equal(x, original)  # the input is untouched
    assert (out < 0).all()


def test_residual_block_adds_scaled_branch_to_x():
    torch.manual_seed(0)
    block = ResBlock(dim=8, kernel=5, res_scale=0.3)
    x = torch.randn(3, 8, 6)
    branch = block.conv2(torch.relu(block.conv1(torch.relu(x))))
    torch.testing.assert_close(block(x), x + 0.3 * branch)
    assert block.conv1.padding == "same"


def test_critic_flattens_channels_first_like_the_reference():
    torch.manual_seed(0)
    d = Critic(TINY)
    x = torch.randn(2, 7, 6)
    h = d.blocks(d.input(x))  # (B, D, L)
    expected = h.reshape(2, -1) @ d.output.weight[0] + d.output.bias
    torch.testing.assert_close(d(x), expected)


def test_layer_norm_keeps_samples_independent_and_batch_norm_does_not():
    torch.manual_seed(0)
    x = torch.randn(5, 7, 6)
    layer = Critic(ModelConfig(**{**TINY.__dict__, "critic_norm": "layer"}))
    assert any(isinstance(m, nn.GroupNorm) for m in layer.modules())
    torch.testing.assert_close(layer(x)[:2], layer(x[:2]))
    batch = Critic(ModelConfig(**{**TINY.__dict__, "critic_norm": "batch"}))
    assert not torch.allclose(batch(x)[:2], batch(x[:2]))


def test_generator_has_no_normalization():
    g = Generator(ModelConfig(**{**TINY.__dict__, "critic_norm": "layer"}))
    assert not any(isinstance(m, (nn.GroupNorm, nn.BatchNorm1d)) for m in g.modules())


def test_one_hot_matches_torch_and_keeps_dtype():
    ids = torch.tensor([[0, 3, 6], [2, 2, 1]], dtype=torch.uint8)
    x = one_hot(ids, 7, torch.float64)
    assert x.shape == (2, 7, 3) and x.dtype == torch.float64
    expected = nn.functional.one_hot(ids.long(), 7).permute(0, 2, 1).double()
    assert torch.equal(x, expected)


@pytest.mark.parametrize(
    "field, value",
    [("critic_norm", "instance"), ("dim", 0), ("blocks", -1), ("vocab_size", 1), ("kernel", 0)],
)
def test_bad_config_is_a_user_error(field, value):
    with pytest.raises(UserError, match=f"model.{field} must be"):
        ModelConfig(**{**TINY.__dict__, field: value})
