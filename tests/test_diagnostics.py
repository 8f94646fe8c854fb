import json

import pytest
import torch

from textgan.nn.lipschitz import LipschitzConfig, after_critic_step, apply_constraint
from textgan.nn.networks import Critic, ModelConfig, one_hot
from textgan.training.diagnostics import (
    HIST_BINS,
    append_diagnostics,
    critic_diagnostics,
    effective_weights,
    layer_groups,
)

CFG = ModelConfig(vocab_size=7, seq_len=6, dim=8, blocks=2, kernel=3)
LAYERS = ["input", "blocks.0", "blocks.1", "output"]


def _batch(b=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    real = one_hot(torch.randint(0, CFG.vocab_size, (b, CFG.seq_len), generator=g), CFG.vocab_size)
    fake = torch.softmax(torch.randn(b, CFG.vocab_size, CFG.seq_len, generator=g), dim=1)
    return real, fake


def _critic(kind, seed=0, **lip):
    torch.manual_seed(seed)
    cfg = LipschitzConfig(kind=kind, **lip)
    return apply_constraint(Critic(CFG), cfg), cfg


def test_keys_shapes_and_layer_order():
    critic, cfg = _critic("gp")
    real, fake = _batch()
    rec = critic_diagnostics(critic, real, fake, cfg, iteration=7)
    assert rec["iter"] == 7 and rec["lipschitz"] == "gp" and rec["clip_share"] is None
    hist = rec["weight_hist"]
    n_params = sum(p.numel() for p in critic.parameters())
    assert hist["bins"] == HIST_BINS == len(hist["counts"]) and sum(hist["counts"]) == n_params
    assert hist["max_abs"] == pytest.approx(max(p.abs().max().item() for p in critic.parameters()))
    assert rec["layer_grad_norms"]["names"] == LAYERS
    assert all(n > 0 for n in rec["layer_grad_norms"]["norms"])
    assert set(rec["input_grad"]) == {"real", "fake", "interp"}
    assert all(s["mean"] > 0 and s["std"] >= 0 for s in rec["input_grad"].values())
    json.dumps(rec)  # one JSON line


def test_layer_grad_norms_match_the_critic_loss_gradient():
    # Clipping has no penalty and draws no randomness: the loss is mean D(fake) − mean D(real).
    critic, cfg = _critic("clip", clip=10.0)
    real, fake = _batch()
    rec = critic_diagnostics(critic, real, fake, cfg, iteration=0)
    critic.zero_grad()
    (critic(fake).mean() - critic(real).mean()).backward()
    expect = [sum(p.grad.pow(2).sum() for p in ps).sqrt().item() for _, ps in layer_groups(critic)]
    assert rec["layer_grad_norms"]["norms"] == pytest.approx(expect, rel=1e-5)


def test_input_grad_norm_of_real_inputs_matches_autograd():
    critic, cfg = _critic("gp")
    real, fake = _batch()
    rec = critic_diagnostics(critic, real, fake, cfg, iteration=0)
    x = real.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(critic(x).sum(), x)
    norms = g.flatten(1).norm(dim=1)
    assert rec["input_grad"]["real"]["mean"] == pytest.approx(norms.mean().item(), rel=1e-5)
    assert rec["input_grad"]["real"]["std"] == pytest.approx(norms.std().item(), rel=1e-5)


@pytest.mark.parametrize("kind", ["gp", "sn", "sn-conv"])
def test_layer_op_norms_are_each_layers_operator_norm(kind):
    critic, cfg = _critic(kind)
    real, fake = _batch()
    rec = critic_diagnostics(critic, real, fake, cfg, iteration=0)
    ops = rec["layer_op_norms"]
    convs = [f"blocks.{i}.conv{j}" for i in range(CFG.blocks) for j in (1, 2)]
    assert ops["names"] == ["input", *convs, "output"]
    for name, norm in zip(ops["names"], ops["norms"], strict=True):
        layer = critic.get_submodule(name)
        # The weight the next training forward uses (spectral norm: one more power iteration).
        weight = layer.weight.detach()
        if name == "output":
            exact = torch.linalg.matrix_norm(weight, ord=2).item()
        else:  # the matrix of the convolution on length-L inputs
            n = layer.in_channels * CFG.seq_len
            eye = torch.eye(n).view(n, layer.in_channels, CFG.seq_len)
            columns = torch.nn.functional.conv1d(eye, weight, padding=layer.padding)
            exact = torch.linalg.matrix_norm(columns.flatten(1), ord=2).item()
        assert norm == pytest.approx(exact, rel=1e-5), name
    if kind == "sn-conv":  # normalized by the operator norm (16 power iterations so far)
        assert max(ops["norms"]) == pytest.approx(1.0, abs=0.01)


def test_clip_share_is_one_after_clipping_large_weights():
    critic, cfg = _critic("clip", clip=0.01)
    with torch.no_grad():
        for p in critic.parameters():
            p.copy_(torch.where(torch.rand_like(p) < 0.5, -1.0, 1.0) * (0.05 + torch.rand_like(p)))
    after_critic_step(critic, cfg)
    real, fake = _batch()
    rec = critic_diagnostics(critic, real, fake, cfg, iteration=3)
    assert rec["clip_share"] == 1.0
    assert rec["weight_hist"]["max_abs"] == pytest.approx(0.01)
    counts = rec["weight_hist"]["counts"]
    assert counts[0] + counts[-1] == sum(counts)  # every weight sits in an edge bin


def test_clip_share_of_fresh_critic_is_small():
    critic, cfg = _critic("clip", clip=0.01)  # reference init spreads weights far beyond ±0.01
    rec = critic_diagnostics(critic, *_batch(), cfg, iteration=0)
    assert 0.0 < rec["clip_share"] < 1.0
    critic, cfg = _critic("clip", clip=100.0)
    assert critic_diagnostics(critic, *_batch(), cfg, iteration=0)["clip_share"] == 0.0


def test_spectral_norm_histogram_uses_normalized_weights_and_leaves_the_run_untouched():
    critic, cfg = _critic("sn")
    real, fake = _batch()
    buffers = [b.clone() for b in critic.buffers()]
    rng_state = torch.get_rng_state()
    rec = critic_diagnostics(critic, real, fake, cfg, iteration=2)
    assert all(torch.equal(a, b) for a, b in zip(buffers, critic.buffers(), strict=True))
    assert torch.equal(rng_state, torch.get_rng_state())
    assert all(p.grad is None for p in critic.parameters())
    assert rec["layer_grad_norms"]["names"] == LAYERS
    critic.eval()
    max_abs = max(w.abs().max().item() for w in effective_weights(critic))
    assert rec["weight_hist"]["max_abs"] == pytest.approx(max_abs, rel=1e-4)
    n_weights = sum(w.numel() for w in effective_weights(critic))
    assert sum(rec["weight_hist"]["counts"]) == n_weights


def test_same_inputs_same_record():
    critic, cfg = _critic("gp-fd")
    real, fake = _batch()
    a = critic_diagnostics(critic, real, fake, cfg, iteration=5, seed=1)
    b = critic_diagnostics(critic, real, fake, cfg, iteration=5, seed=1)
    assert a == b


def test_weight_histogram_counts_nonfinite_weights_apart():
    from textgan.training.diagnostics import weight_histogram

    hist = weight_histogram([torch.tensor([-2.0, 0.0, 1.0, float("nan"), float("inf")])], bins=4)
    assert hist["max_abs"] == 2.0 and hist["nonfinite"] == 2
    assert hist["counts"] == [1, 0, 1, 1]  # bins of width 1 over [-2, 2]


def test_append_writes_one_line_per_record(tmp_path):
    append_diagnostics(tmp_path, {"iter": 1})
    append_diagnostics(tmp_path, {"iter": 2})
    lines = (tmp_path / "diagnostics.jsonl").read_text().splitlines()
    assert [json.loads(line)["iter"] for line in lines] == [1, 2]


def _tiny_run(tmp_path, gbw_dir, name, diag_every):
    from textgan import config as C
    from textgan.training import loop as T
    from textgan.training.setup import resolve_run_config

    layers = C.layered_config(
        "tiny",
        overrides={
            "corpus": {
                "corpus": str(gbw_dir),
                "data_dir": str(tmp_path / "data"),
                "max_lines": 2000,
            },
            "model": {"dim": 16},
            "lipschitz": {"kind": "gp"},
            "train": {
                "iters": 4,
                "batch_size": 8,
                "critic_iters": 2,
                "log_every": 1,
                "eval_every": 100,
                "eval_samples": 32,
                "diag_every": diag_every,
                "run_dir": str(tmp_path / name),
            },
        },
    )
    config, prepared = resolve_run_config(layers, progress=False)
    T.train(config, prepared, progress=False)
    run = tmp_path / name
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    diags = [json.loads(line) for line in (run / "diagnostics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "time"} for r in rows], diags


def test_training_logs_diagnostics_without_changing_the_run(tmp_path, gbw_dir):
    rows_often, diags_often = _tiny_run(tmp_path, gbw_dir, "often", diag_every=1)
    rows_once, diags_once = _tiny_run(tmp_path, gbw_dir, "once", diag_every=100)
    assert [d["iter"] for d in diags_often] == [1, 2, 3, 4]
    assert [d["iter"] for d in diags_once] == [4]  # the last iteration always
    assert rows_often == rows_once  # same losses, same JS: diagnostics draw no training RNG
    assert diags_often[-1] == diags_once[-1]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_training_diagnostics_under_bf16(tmp_path, gbw_dir):
    from textgan import config as C
    from textgan.training import loop as T
    from textgan.training.setup import resolve_run_config

    layers = C.layered_config(
        "tiny",
        overrides={
            "corpus": {"corpus": str(gbw_dir), "data_dir": str(tmp_path / "data")},
            "lipschitz": {"kind": "sn"},
            "train": {
                "iters": 3,
                "device": "cuda",
                "precision": "bf16",
                "diag_every": 1,
                "eval_every": 100,
                "run_dir": str(tmp_path / "run"),
            },
        },
    )
    config, prepared = resolve_run_config(layers, progress=False)
    T.train(config, prepared, progress=False)
    lines = (tmp_path / "run" / "diagnostics.jsonl").read_text().splitlines()
    diags = [json.loads(line) for line in lines]
    assert [d["iter"] for d in diags] == [1, 2, 3]
    assert all(n > 0 for n in diags[-1]["layer_grad_norms"]["norms"])
    assert diags[-1]["weight_hist"]["nonfinite"] == 0
