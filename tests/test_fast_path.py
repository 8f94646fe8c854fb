"""The fast training step computes what the plain fp32 step computes.

Tolerances: the closed-form input gradient is exact, so in float64 it matches double
backpropagation to 1e-10 and in fp32 the whole critic loss, its statistics and every weight
gradient match to a relative 1e-4. bf16 autocast rounds every product to 8 bits of mantissa:
loss, penalty and mean gradient norm stay within 2 % and each weight gradient within 8 % (relative
Euclidean error) of fp32 — the same error as autocast on the plain path.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from textgan.config import RunConfig, TrainConfig
from textgan.corpus import CorpusConfig
from textgan.errors import UserError
from textgan.nn import fast, lipschitz
from textgan.nn.losses import LOSSES
from textgan.nn.networks import Critic, Generator, ModelConfig, one_hot
from textgan.training.trainer import Trainer

CPU = torch.device("cpu")


def _nets(vocab=7, seq_len=8, dim=16, blocks=2, kernel=5, seed=0, **kw):
    torch.manual_seed(seed)
    cfg = ModelConfig(
        vocab_size=vocab, seq_len=seq_len, dim=dim, blocks=blocks, kernel=kernel, **kw
    )
    return cfg, Generator(cfg), Critic(cfg)


def _batch(cfg, generator, n=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, cfg.vocab_size, (n, cfg.seq_len), generator=g)
    with torch.no_grad():
        fake = generator(generator.sample_noise(n, generator=g))
    return one_hot(ids, cfg.vocab_size), fake


@pytest.mark.parametrize(("blocks", "kernel"), [(2, 5), (0, 5), (3, 3), (1, 1)])
def test_closed_form_input_gradient_equals_double_backprop(blocks, kernel):
    cfg, gen, critic = _nets(blocks=blocks, kernel=kernel)
    critic.double()
    real, fake = _batch(cfg, gen)
    x = (0.3 * real + 0.7 * fake).double().requires_grad_(True)
    (expected,) = torch.autograd.grad(critic(x).sum(), x)
    got = fast.critic_input_grad(critic, x.detach())
    assert got.shape == x.shape
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)

    # The penalized loss's weight gradients: double backpropagation written out here.
    real, fake, x_hat = real.double(), fake.double(), x.detach()
    lip = lipschitz.LipschitzConfig(target=0.5)
    leaf = x_hat.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(leaf).sum(), leaf, create_graph=True)
    penalty = ((grad.flatten(1).norm(dim=1) - 0.5) ** 2).mean()
    reference = critic(fake).mean() - critic(real).mean() + 10.0 * penalty
    loss, stats = fast.penalized_loss(critic, real, fake, x_hat, lip)
    assert loss.dtype == torch.float64 and stats["gp"] > 0
    torch.testing.assert_close(loss, reference, rtol=1e-12, atol=1e-12)
    params = list(critic.parameters())
    for a, b in zip(
        torch.autograd.grad(loss, params), torch.autograd.grad(reference, params), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def _loss_and_grads(fn, critic, real, fake, cfg, precision="fp32"):
    rng = torch.Generator().manual_seed(3)
    with fast.autocast(CPU, precision):
        loss, stats = fn(critic, real, fake, cfg, rng=rng)
    grads = torch.autograd.grad(loss, list(critic.parameters()))
    return loss.detach(), stats, grads


@pytest.mark.parametrize("kind", ["gp", "gp-one-sided"])
def test_fast_loss_matches_plain_fp32(kind):
    cfg, gen, critic = _nets()
    real, fake = _batch(cfg, gen)
    lip = lipschitz.LipschitzConfig(kind=kind, target=0.5)
    assert fast.fast_loss_supported(critic, lip)
    ref = _loss_and_grads(lipschitz.critic_loss, critic, real, fake, lip)
    got = _loss_and_grads(fast.critic_loss, critic, real, fake, lip)
    torch.testing.assert_close(got[0], ref[0], rtol=1e-4, atol=1e-6)
    for key in ("wasserstein", "gp", "penalty", "grad_norm", "d_real", "d_fake"):
        torch.testing.assert_close(got[1][key], ref[1][key], rtol=1e-4, atol=1e-6, msg=key)
    for a, b in zip(got[2], ref[2], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert ref[1]["gp"] > 0  # the penalty is active, so its gradients were compared


@pytest.mark.parametrize("kind", ["gp", "gp-one-sided"])
def test_fast_loss_keeps_float64(kind):
    cfg, gen, critic = _nets()
    critic.double()
    real, fake = (t.double() for t in _batch(cfg, gen))
    lip = lipschitz.LipschitzConfig(kind=kind, target=0.5)
    ref = _loss_and_grads(lipschitz.critic_loss, critic, real, fake, lip)
    got = _loss_and_grads(fast.critic_loss, critic, real, fake, lip)
    assert got[0].dtype == torch.float64
    torch.testing.assert_close(got[0], ref[0], rtol=1e-12, atol=1e-12)
    assert got[1].keys() == ref[1].keys()
    for key, value in ref[1].items():
        assert got[1][key].dtype == torch.float64, key
        torch.testing.assert_close(got[1][key], value, rtol=1e-12, atol=1e-12, msg=key)
    for a, b in zip(got[2], ref[2], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-12))


def test_bf16_fast_path_within_tolerance_of_fp32():
    cfg, gen, critic = _nets(vocab=20, seq_len=16, dim=64, blocks=2)
    real, fake = _batch(cfg, gen, n=16)
    lip = lipschitz.LipschitzConfig()
    ref = _loss_and_grads(lipschitz.critic_loss, critic, real, fake, lip)
    got = _loss_and_grads(fast.critic_loss, critic, real, fake, lip, precision="bf16")
    assert _rel(got[0], ref[0]) < 0.02
    for key in ("gp", "grad_norm", "wasserstein"):
        assert _rel(got[1][key], ref[1][key]) < 0.02, key
    weights = [(a, b) for a, b in zip(got[2], ref[2], strict=True) if b.norm() > 1e-6]
    assert len(weights) >= 2 * cfg.blocks + 2
    assert max(_rel(a, b) for a, b in weights) < 0.08
    assert all(g.dtype == torch.float32 for g in got[2])  # fp32 master weights


@pytest.mark.parametrize(
    ("model", "kind"),
    [
        ({"critic_norm": "layer"}, "gp"),
        ({}, "gp-fd"),
        ({}, "clip"),
        ({}, "sn"),
        ({"kernel": 4}, "gp"),
    ],
)
def test_unsupported_critics_fall_back_to_the_plain_loss(model, kind):
    cfg, gen, critic = _nets(**model)
    lip = lipschitz.LipschitzConfig(kind=kind)
    lipschitz.apply_constraint(critic, lip)
    assert not fast.fast_loss_supported(critic, lip)
    real, fake = _batch(cfg, gen)
    got = _loss_and_grads(fast.critic_loss, critic, real, fake, lip)
    # Eval mode: spectral norm's weights as the loss's (only) forward pass left them.
    expected = _reference_loss(critic.eval(), real, fake, lip, seed=3)
    torch.testing.assert_close(got[0], expected.detach(), rtol=1e-5, atol=1e-6)


def _reference_loss(critic, real, fake, lip, seed):
    """The critic loss written out from the definitions, with ``lipschitz``'s draws: ε for
    x̂ = ε·real + (1 − ε)·fake, then for gp-fd two pairings and ε of a second interpolate."""
    rng = torch.Generator().manual_seed(seed)
    b = real.shape[0]
    loss = critic(fake).mean() - critic(real).mean()
    if lip.kind in ("gp", "gp-fd"):
        x1 = (fake + torch.rand(b, 1, 1, generator=rng) * (real - fake)).requires_grad_(True)
        if lip.kind == "gp":
            (grad,) = torch.autograd.grad(critic(x1).sum(), x1, create_graph=True)
            slope = grad.flatten(1).norm(dim=1)
        else:
            r, f = real[torch.randperm(b, generator=rng)], fake[torch.randperm(b, generator=rng)]
            x2 = f + torch.rand(b, 1, 1, generator=rng) * (r - f)
            slope = (critic(x1) - critic(x2)).abs() / (x1 - x2).flatten(1).norm(dim=1)
        loss = loss + lip.lam * ((slope - lip.target) ** 2).mean()
    return loss


@pytest.mark.parametrize("kind", ["clip", "sn", "sn-conv", "none", "gp-fd"])
def test_grad_norm_is_measured_only_when_monitored(kind, monkeypatch):
    cfg, gen, critic = _nets()
    lip = lipschitz.LipschitzConfig(kind=kind)
    lipschitz.apply_constraint(critic, lip)
    path = fast.FastPath(gen, critic, lip, CPU, "fp32")
    real, fake = _batch(cfg, gen)
    rows, input_grads = [], []
    critic.register_forward_hook(lambda module, args, out: rows.append(args[0].shape[0]))
    grad = torch.autograd.grad

    def counted(outputs, inputs, *args, **kwargs):
        input_grads.append(inputs)
        return grad(outputs, inputs, *args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", counted)
    interpolates = [12] if kind == "gp-fd" else []  # gp-fd scores x̂₁, x̂₂ for its penalty
    _, stats = path.critic_loss(real, fake, rng=torch.Generator().manual_seed(4))
    assert "grad_norm" not in stats
    assert rows == [12, *interpolates] and input_grads == []
    rows.clear()
    _, stats = path.critic_loss(real, fake, rng=torch.Generator().manual_seed(4), monitor=True)
    assert rows == [12, *(interpolates or [6])] and len(input_grads) == 1
    monkeypatch.undo()

    # The mean ‖∇x̂ D(x̂)‖ at the first ε drawn, with the weights of the monitored forward pass
    # (eval mode: spectral norm as that pass's power iteration left it).
    eps = torch.rand(6, 1, 1, generator=torch.Generator().manual_seed(4))
    x_hat = (fake + eps * (real - fake)).requires_grad_(True)
    (g,) = torch.autograd.grad(critic.eval()(x_hat).sum(), x_hat)
    torch.testing.assert_close(stats["grad_norm"], g.flatten(1).norm(dim=1).mean())


def test_channels_last_generation_runs_the_generators_own_logits(monkeypatch):
    cfg, gen, critic = _nets()
    z = torch.randn(4, cfg.noise_dim)
    with torch.no_grad():
        expected = torch.softmax(2 * gen.logits(z), dim=1)
    layouts = []
    logits = Generator.logits

    def changed(self, z, position_major=False):  # a change to the Generator
        layouts.append(position_major)
        return 2 * logits(self, z, position_major=position_major)

    monkeypatch.setattr(Generator, "logits", changed)
    path = fast.FastPath(gen, critic, lipschitz.LipschitzConfig(), CPU, "fp32", channels_last=True)
    with torch.no_grad():
        got = path.generate(z)
    assert layouts == [True]
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_resolve_precision(monkeypatch):
    monkeypatch.setattr(fast, "native_bf16", lambda device: True)
    assert fast.resolve_precision("auto", CPU) == "bf16"
    assert fast.resolve_precision("auto", torch.device("cuda")) == "bf16"
    monkeypatch.setattr(fast, "native_bf16", lambda device: False)
    assert fast.resolve_precision("auto", CPU) == "fp32"
    assert fast.resolve_precision("auto", torch.device("mps")) == "fp32"
    assert fast.resolve_precision("fp32", torch.device("cuda")) == "fp32"
    assert fast.resolve_precision("tf32", torch.device("cuda")) == "tf32"
    assert fast.resolve_precision("bf16", CPU) == "bf16"
    with pytest.raises(UserError, match="tf32 needs a CUDA GPU"):
        fast.resolve_precision("tf32", CPU)
    with pytest.raises(UserError, match="unknown precision"):
        fast.resolve_precision("fp8", CPU)


def test_native_bf16_on_this_machine():
    cpuinfo = Path("/proc/cpuinfo")
    flags = set(cpuinfo.read_text().split()) if cpuinfo.exists() else set()
    if flags:  # Linux: the kernel's own list of the CPU's instructions
        assert fast.native_bf16(CPU) == bool(flags & {"avx512_bf16", "amx_bf16"})
    assert not fast.native_bf16(torch.device("mps"))


def _cpu(monkeypatch, **flags):
    """Pretend to run on a CPU with these capabilities, where oneDNN reports bf16 support."""
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"architecture": "x86_64", **flags})
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: True)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)


def test_auto_precision_is_fp32_on_an_avx512_cpu_that_only_emulates_bf16(monkeypatch):
    # Cascade Lake: AVX-512 with VNNI, no bf16 instructions (bf16 there ran 2.3× slower).
    avx512 = {f: True for f in ("avx2", "avx512_f", "avx512_bw", "avx512_vl", "avx512_vnni")}
    _cpu(monkeypatch, **avx512, avx512_bf16=False, amx_bf16=False)
    assert not fast.native_bf16(CPU)
    assert fast.resolve_precision("auto", CPU) == "fp32"


@pytest.mark.parametrize("flag", ["avx512_bf16", "amx_bf16"])
def test_auto_precision_is_bf16_on_a_cpu_with_bf16_instructions(monkeypatch, flag):
    _cpu(monkeypatch, avx2=True, avx512_f=True, **{flag: True})
    assert fast.native_bf16(CPU)
    assert fast.resolve_precision("auto", CPU) == "bf16"


def test_configure_device_sets_tf32_only_for_tf32():
    backends = torch.backends
    saved = (backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32, backends.cudnn.benchmark)
    try:
        fast.configure_device(torch.device("cuda"), "tf32")
        assert backends.cuda.matmul.allow_tf32 and backends.cudnn.allow_tf32
        assert backends.cudnn.benchmark
        fast.configure_device(torch.device("cuda"), "fp32")
        assert not backends.cuda.matmul.allow_tf32 and not backends.cudnn.allow_tf32
        backends.cudnn.allow_tf32 = True  # PyTorch's default, which bf16 leaves alone
        fast.configure_device(torch.device("cuda"), "bf16")
        assert backends.cudnn.allow_tf32 and not backends.cuda.matmul.allow_tf32
        backends.cudnn.benchmark = False
        fast.configure_device(CPU, "fp32")  # nothing global changes for the CPU
        assert not backends.cudnn.benchmark
    finally:
        (backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32, backends.cudnn.benchmark) = (
            saved
        )


def test_compiled_falls_back_when_compile_is_unavailable(monkeypatch):
    def broken(fn, **options):
        raise RuntimeError("Dynamo is not supported on this Python")

    monkeypatch.setattr(torch, "compile", broken)
    with pytest.warns(UserWarning, match="running eagerly"):
        wrapped = fast.Compiled(lambda x: x * 2)
    assert wrapped(torch.tensor(3.0)) == 6.0
    assert "not supported" in wrapped.error


def test_compiled_falls_back_on_compiler_errors_but_not_on_the_functions_own(monkeypatch):
    class BackendCompilerFailed(Exception):
        pass

    BackendCompilerFailed.__module__ = "torch._dynamo.exc"
    calls = []

    def failing_compile(fn, **options):
        def run(*args):
            calls.append("compiled")
            raise BackendCompilerFailed("inductor: no C++ compiler")

        return run

    monkeypatch.setattr(torch, "compile", failing_compile)
    wrapped = fast.Compiled(lambda x: x + 1)
    with pytest.warns(UserWarning, match="no C\\+\\+ compiler"):
        assert wrapped(torch.tensor(1.0)) == 2.0
    assert wrapped(torch.tensor(2.0)) == 3.0
    assert calls == ["compiled"]  # gave up once, then eager

    def own_bug(x):
        raise ValueError("a real bug")

    monkeypatch.setattr(torch, "compile", lambda fn, **o: fn)
    with pytest.raises(ValueError, match="a real bug"):
        fast.Compiled(own_bug)(torch.tensor(0.0))


def _trainer(**train):
    cfg = ModelConfig(vocab_size=12, seq_len=8, dim=16, blocks=1)
    config = RunConfig(
        CorpusConfig(),
        cfg,
        lipschitz.LipschitzConfig(),
        TrainConfig(preset="tiny", batch_size=8, critic_iters=2, device="cpu", **train),
    )
    ids = np.random.default_rng(0).integers(2, 12, size=(100, 8)).astype(np.uint8)
    return Trainer(config, ids, CPU)


def test_trainer_takes_the_fast_path_in_the_requested_precision():
    for precision in ("fp32", "bf16"):
        trainer = _trainer(precision=precision)
        assert trainer.fast.precision == precision and trainer.fast.explicit
        loss, stats = trainer.critic_step()
        gen_loss = trainer.generator_step()
        assert torch.isfinite(loss) and torch.isfinite(gen_loss)
        assert stats["grad_norm"] > 0 and stats["gp"] >= 0
    with pytest.raises(UserError, match="precision must be one of"):
        TrainConfig(precision="fp16").validate()


def test_trainer_fp32_fast_step_equals_the_plain_step(monkeypatch):
    fast_trainer = _trainer(precision="fp32")
    fast_trainer.critic_step()
    monkeypatch.setattr(fast, "fast_loss_supported", lambda critic, cfg: False)
    plain_trainer = _trainer(precision="fp32")
    assert not plain_trainer.fast.explicit
    plain_trainer.critic_step()
    # Same starting weights and random draws, so the gradients of the step must agree (Adam's
    # first update is ±lr wherever a gradient is ~0, so the updated weights are not compared).
    for a, b in zip(
        fast_trainer.critic.parameters(), plain_trainer.critic.parameters(), strict=True
    ):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.skipif(
    shutil.which("cc") is None and shutil.which("gcc") is None,
    reason="torch.compile's CPU backend (inductor) needs a C compiler",
)
def test_compiled_step_matches_eager():
    cfg, gen, critic = _nets(dim=8, blocks=1)
    real, fake = _batch(cfg, gen)
    lip = lipschitz.LipschitzConfig()
    x_hat = 0.5 * real + 0.5 * fake
    compiled = fast.Compiled(fast.penalized_loss)
    loss_c, stats_c = compiled(critic, real, fake, x_hat, lip)
    assert compiled.error is None  # compiled, not an eager fallback compared with itself
    grads_c = torch.autograd.grad(loss_c, list(critic.parameters()))
    loss_e, stats_e = fast.penalized_loss(critic, real, fake, x_hat, lip)
    grads_e = torch.autograd.grad(loss_e, list(critic.parameters()))
    torch.testing.assert_close(loss_c, loss_e, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(stats_c["grad_norm"], stats_e["grad_norm"], rtol=1e-4, atol=1e-6)
    for a, b in zip(grads_c, grads_e, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda
@pytest.mark.parametrize("precision", ["fp32", "tf32", "bf16"])
def test_cuda_fast_path_matches_plain_fp32(precision):
    device = torch.device("cuda")
    fast.configure_device(device, "fp32")
    cfg, gen, critic = _nets(vocab=20, seq_len=16, dim=64, blocks=2)
    real, fake = (t.to(device) for t in _batch(cfg, gen, n=16))
    critic.to(device)
    lip = lipschitz.LipschitzConfig()

    def run(fn, prec):
        fast.configure_device(device, prec)
        rng = torch.Generator(device).manual_seed(3)
        with fast.autocast(device, prec):
            loss, stats = fn(critic, real, fake, lip, rng=rng)
        return loss.detach(), stats, torch.autograd.grad(loss, list(critic.parameters()))

    ref = run(lipschitz.critic_loss, "fp32")
    got = run(fast.critic_loss, precision)
    fast.configure_device(device, "fp32")
    tol = {"fp32": 1e-4, "tf32": 0.02, "bf16": 0.02}[precision]
    assert _rel(got[0], ref[0]) < tol
    for key in ("gp", "grad_norm", "wasserstein"):
        assert _rel(got[1][key], ref[1][key]) < tol, key
    weights = [(a, b) for a, b in zip(got[2], ref[2], strict=True) if b.norm() > 1e-6]
    assert max(_rel(a, b) for a, b in weights) < 4 * tol


@cuda
@pytest.mark.parametrize("compile", [False, True, "no-cudagraphs"])
def test_cuda_trainer_steps(compile, monkeypatch):
    if compile == "no-cudagraphs":  # inductor alone, without CUDA graphs
        monkeypatch.setitem(fast.COMPILE_OPTIONS, "cuda", {})
        compile = True
    cfg = ModelConfig(vocab_size=12, seq_len=8, dim=16, blocks=1)
    config = RunConfig(
        CorpusConfig(),
        cfg,
        lipschitz.LipschitzConfig(),
        TrainConfig(preset="tiny", batch_size=8, critic_iters=2, device="cuda", compile=compile),
    )
    ids = np.random.default_rng(0).integers(2, 12, size=(100, 8)).astype(np.uint8)
    trainer = Trainer(config, ids, torch.device("cuda"))
    assert trainer.fast.precision == ("bf16" if fast.native_bf16(trainer.device) else "fp32")
    for _ in range(3):  # results are read before the next step, as the training loop does
        loss, stats = trainer.critic_step()
        assert torch.isfinite(loss) and stats["grad_norm"] > 0
        assert torch.isfinite(trainer.generator_step())
    if compile:
        assert trainer.fast._penalized.error is None  # compiled, not fallen back


def test_adam_is_fused_and_matches_the_default_update():
    torch.manual_seed(0)
    weights = [torch.randn(5, 3, requires_grad=True), torch.randn(7, requires_grad=True)]
    copies = [w.detach().clone().requires_grad_(True) for w in weights]
    fused = fast.adam(weights, 1e-2, (0.5, 0.9), CPU)
    plain = torch.optim.Adam(copies, lr=1e-2, betas=(0.5, 0.9))
    assert fused.defaults["fused"]
    for _ in range(3):
        grads = [torch.randn_like(w) for w in weights]
        for w, c, g in zip(weights, copies, grads, strict=True):
            w.grad, c.grad = g.clone(), g.clone()
        fused.step()
        plain.step()
    for w, c in zip(weights, copies, strict=True):
        torch.testing.assert_close(w, c, rtol=1e-5, atol=1e-6)


def test_channels_last_keeps_values_and_stores_positions_major():
    x = torch.randn(2, 3, 5)
    y = fast.to_position_major(x)
    torch.testing.assert_close(y, x, rtol=0, atol=0)
    assert y.stride() == (15, 1, 3)
    assert not _trainer(precision="fp32").fast.channels_last  # CPU: oneDNN has its own layout


@cuda
def test_cuda_channels_last_path_matches_plain_fp32():
    device = torch.device("cuda")
    cfg = ModelConfig(vocab_size=12, seq_len=8, dim=32, blocks=2)
    config = RunConfig(
        CorpusConfig(),
        cfg,
        lipschitz.LipschitzConfig(),
        TrainConfig(preset="tiny", batch_size=8, device="cuda", precision="fp32"),
    )
    ids = np.random.default_rng(0).integers(2, 12, size=(100, 8)).astype(np.uint8)
    trainer = Trainer(config, ids, device)
    assert trainer.fast.channels_last
    assert trainer.critic.blocks[0].conv1.weight.stride()[1] == 1
    real = trainer.real_batch()
    with torch.no_grad():
        fake = trainer.fake_batch()
        reference = trainer.generator(trainer.generator.sample_noise(8, device))
    assert fake.shape == reference.shape
    rng_state = trainer.eps_rng.get_state()
    got = trainer.fast.critic_loss(real, fake, rng=trainer.eps_rng)
    trainer.eps_rng.set_state(rng_state)
    ref = lipschitz.critic_loss(
        trainer.critic, real.contiguous(), fake.contiguous(), config.lipschitz, trainer.eps_rng
    )
    params = list(trainer.critic.parameters())
    grads_got = torch.autograd.grad(got[0], params)
    grads_ref = torch.autograd.grad(ref[0], params)
    torch.testing.assert_close(got[0], ref[0], rtol=1e-4, atol=1e-5)
    for a, b in zip(grads_got, grads_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)


def test_optimizer_state_follows_the_weights_layout_after_loading():
    # A checkpoint from a CUDA run (position-major weights) resumed on the CPU, or the reverse:
    # fused Adam pairs elements by memory position, so the moments must be re-laid out.
    torch.manual_seed(0)
    w, g = torch.randn(4, 3, 5), torch.randn(4, 3, 5)
    cl = torch.nn.Parameter(fast.to_position_major(w.clone()))
    plain = torch.nn.Parameter(w.clone())
    opt_cl, opt_plain = (
        fast.adam([cl], 0.1, (0.5, 0.9), CPU),
        fast.adam([plain], 0.1, (0.5, 0.9), CPU),
    )
    cl.grad, plain.grad = fast.to_position_major(g.clone()), g.clone()
    opt_cl.step()
    opt_plain.step()
    # contiguous moments (a copy, as from a checkpoint) into a position-major weight
    opt_cl.load_state_dict(copy.deepcopy(opt_plain.state_dict()))
    fast.match_optimizer_layout(opt_cl)
    assert opt_cl.state[cl]["exp_avg"].stride() == cl.stride()
    for _ in range(3):
        cl.grad, plain.grad = fast.to_position_major(g.clone()), g.clone()
        opt_cl.step()
        opt_plain.step()
    torch.testing.assert_close(cl, plain)


def test_cli_precision_and_compile_flags(gbw_dir, tmp_path):
    from click.testing import CliRunner

    from textgan.cli import main

    data = ["--corpus", str(gbw_dir), "--data-dir", str(tmp_path / "data")]
    micro = ["--preset", "tiny", "--dim", "8", "--batch-size", "8", "--critic-iters", "1",
             "--eval-samples", "16", "--no-progress", "--device", "cpu"]  # fmt: skip
    runner = CliRunner()
    bad = runner.invoke(main, ["train", *data, *micro, "--precision", "tf32", "--run-dir",
                               str(tmp_path / "bad")])  # fmt: skip
    assert bad.exit_code == 2
    assert "textgan: error: --precision tf32 needs a CUDA GPU" in bad.stderr
    assert not (tmp_path / "bad").exists()
    run = tmp_path / "ok"
    ok = runner.invoke(main, ["train", *data, *micro, "--iters", "1", "--precision", "fp32",
                              "--no-compile", "--run-dir", str(run)])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    saved = json.loads((run / "config.json").read_text())["train"]
    assert saved["precision"] == "fp32" and saved["compile"] is False


def test_position_major_layout_gives_the_same_step():
    # The layout CUDA runs use, exercised on the CPU: same samples, loss, statistics, gradients.
    cfg, gen, critic = _nets(vocab=11, seq_len=8, dim=16, blocks=2)
    lip = lipschitz.LipschitzConfig()
    z = torch.randn(6, cfg.noise_dim)
    real, _ = _batch(cfg, gen)
    plain = fast.FastPath(gen, critic, lip, CPU, "fp32")
    with torch.no_grad():
        fake = plain.generate(z)
    ref = plain.critic_loss(real, fake, torch.Generator().manual_seed(5))
    ref_grads = torch.autograd.grad(ref[0], list(critic.parameters()))
    fast_cl = fast.FastPath(gen, critic, lip, CPU, "fp32", channels_last=True)
    assert critic.blocks[0].conv1.weight.stride() == (16 * 5, 1, 16)
    assert gen.blocks[1].conv2.weight.stride() == (16 * 5, 1, 16)
    with torch.no_grad():
        fake_cl = fast_cl.generate(z)
    torch.testing.assert_close(fake_cl, fake, rtol=1e-5, atol=1e-6)
    got = fast_cl.critic_loss(real, fake_cl, torch.Generator().manual_seed(5))
    torch.testing.assert_close(got[0], ref[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got[1]["grad_norm"], ref[1]["grad_norm"], rtol=1e-5, atol=1e-6)
    for a, b in zip(torch.autograd.grad(got[0], list(critic.parameters())), ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


# -- every loss, r1, and critics besides the paper's ---------------------------------------------

PAIRS = [(loss, "gp") for loss in sorted(LOSSES)] + [("ns", "r1"), ("hinge", "r1")]


@pytest.mark.parametrize("monitor", [False, True])
@pytest.mark.parametrize(("loss", "kind"), PAIRS)
def test_fast_path_covers_the_paper_critic_with_every_loss_and_r1(loss, kind, monitor):
    """The closed-form input gradient holds at any input and a loss only maps the scores, so
    every loss, and R1's penalty at the real rows, take the fast path: the plain path's loss,
    statistics, weight gradients and random draws, in float64."""
    cfg, gen, critic = _nets()
    critic.double()
    real, fake = (t.double() for t in _batch(cfg, gen))
    lip = lipschitz.LipschitzConfig(kind=kind, loss=loss, target=0.5)
    assert fast.fast_loss_supported(critic, lip)
    out = []
    for fn in (lipschitz.critic_loss, fast.critic_loss):
        rng = torch.Generator().manual_seed(3)
        value, stats = fn(critic, real, fake, lip, rng=rng, monitor=monitor)
        out.append((value, stats, torch.autograd.grad(value, list(critic.parameters())), rng))
    (ref, ref_stats, ref_grads, ref_rng), (got, got_stats, got_grads, got_rng) = out
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    assert got_stats.keys() == ref_stats.keys()
    assert ("grad_norm" in ref_stats) == (monitor or kind == "gp")
    for key, value in ref_stats.items():
        torch.testing.assert_close(got_stats[key], value, rtol=1e-12, atol=1e-12, msg=key)
    for a, b in zip(got_grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert torch.equal(got_rng.get_state(), ref_rng.get_state())
    assert ref_stats["gp"] > 0


def test_a_critic_wider_and_deeper_than_the_generator_keeps_the_fast_path():
    cfg, gen, critic = _nets(dim=8, blocks=1, critic_dim=12, critic_blocks=3)
    assert (gen.input.out_features, len(gen.blocks)) == (8 * cfg.seq_len, 1)
    assert (critic.input.out_channels, len(critic.blocks)) == (12, 3)
    critic.double()
    real, fake = (t.double() for t in _batch(cfg, gen))
    lip = lipschitz.LipschitzConfig(loss="hinge")
    assert fast.fast_loss_supported(critic, lip)
    ref = _loss_and_grads(lipschitz.critic_loss, critic, real, fake, lip)
    got = _loss_and_grads(fast.critic_loss, critic, real, fake, lip)
    torch.testing.assert_close(got[0], ref[0], rtol=1e-12, atol=1e-12)
    for a, b in zip(got[2], ref[2], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


class HalfCritic(Critic):
    """A critic of its own (as any registered critic besides the paper's): the paper's layers,
    every score halved."""

    def forward(self, x):
        return 0.5 * super().forward(x)


def test_any_other_critic_takes_the_plain_path():
    cfg, gen, paper = _nets()
    other = HalfCritic(cfg)
    other.load_state_dict(paper.state_dict())
    lip = lipschitz.LipschitzConfig(loss="hinge", target=0.5)
    assert not fast.fast_loss_supported(other, lip)
    path = fast.FastPath(gen, other, lip, CPU, "fp32")
    assert not path.explicit and fast.FastPath(gen, paper, lip, CPU, "fp32").explicit
    real, fake = (t.double() for t in _batch(cfg, gen))
    other.double()
    paper.double()
    got, _ = path.critic_loss(real, fake, rng=torch.Generator().manual_seed(3))
    # Written out on the paper critic's halved scores, with the same draw of ε.
    x_hat = lipschitz.interpolate(real, fake, torch.Generator().manual_seed(3), shuffle=False)
    x_hat.requires_grad_(True)
    (grad,) = torch.autograd.grad(0.5 * paper(x_hat).sum(), x_hat)
    d_real, d_fake = 0.5 * paper(real), 0.5 * paper(fake)
    hinge = torch.relu(1 - d_real).mean() + torch.relu(1 + d_fake).mean()
    want = hinge + 10.0 * ((grad.flatten(1).norm(dim=1) - 0.5) ** 2).mean()
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
