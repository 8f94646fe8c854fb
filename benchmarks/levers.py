"""Each speed lever of the critic step in isolation, timed side by side in one process.

Every variant computes the same WGAN-GP critic step (G forward without grad, critic loss with
the gradient penalty, backward, Adam) on the same weights and inputs; they differ in one
lever at a time. Variants run round-robin, so a burst of load from other processes hits all of
them alike; the minimum over repeats is reported with the ratio against ``naive``.

    python benchmarks/levers.py --preset paper --repeats 3
    python benchmarks/levers.py --preset small --variants naive,explicit,explicit-bf16
    python benchmarks/levers.py --conv            # convolution formulations, one layer
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable

import torch
from torch.nn import functional as F

from textgan.config import PRESETS, TrainConfig
from textgan.nn import fast, lipschitz
from textgan.nn.networks import Critic, Generator, ModelConfig, one_hot

LIP = lipschitz.LipschitzConfig()


def _penalty(grad: torch.Tensor) -> torch.Tensor:
    return ((grad.float().flatten(1).norm(dim=1) - 1) ** 2).mean()


def loss_naive(D: Critic, real, fake, eps):
    """Three critic calls, double backward (benchmarks/naive_step.py's formulation)."""
    d_real, d_fake = D(real).float().mean(), D(fake).float().mean()
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
    return d_fake - d_real + LIP.lam * _penalty(grad)


def loss_batched3(D: Critic, real, fake, eps):
    """Real, fake and interpolates in one critic call, double backward through all of it."""
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    s = D(torch.cat([real, fake, x_hat])).float()
    b = real.shape[0]
    (grad,) = torch.autograd.grad(s[2 * b :].sum(), x_hat, create_graph=True)
    return s[b : 2 * b].mean() - s[:b].mean() + LIP.lam * _penalty(grad)


def loss_batched2(D: Critic, real, fake, eps):
    """Real and fake in one call, interpolates in a second, double backward."""
    s = D(torch.cat([real, fake])).float()
    b = real.shape[0]
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
    return s[b:].mean() - s[:b].mean() + LIP.lam * _penalty(grad)


class _MaskedRelu(torch.autograd.Function):
    """ReLU whose backward treats the mask as a constant: no zeros flow back into the forward."""

    @staticmethod
    def forward(ctx, x):
        mask = x > 0
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return grad * mask


def _critic_masked_relu(D: Critic, x):
    h = D.input(x)
    for block in D.blocks:
        a = block.conv1(_MaskedRelu.apply(h))
        h = h + block.res_scale * block.conv2(_MaskedRelu.apply(a))
    return D.output(h.flatten(1)).squeeze(1)


def loss_maskrelu(D: Critic, real, fake, eps):
    """loss_batched2 with a ReLU whose second derivative is not propagated."""
    s = D(torch.cat([real, fake])).float()
    b = real.shape[0]
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(_critic_masked_relu(D, x_hat).sum(), x_hat, create_graph=True)
    return s[b:].mean() - s[:b].mean() + LIP.lam * _penalty(grad)


def loss_explicit(D: Critic, real, fake, eps):
    """textgan.nn.fast: the input gradient as a first-order graph (no double backward)."""
    x_hat = fake + eps * (real - fake)
    return fast.penalized_loss(D, real, fake, x_hat, LIP)[0]


def _input_grad_masks(D: Critic, x):
    """The closed-form input gradient with 0/1 mask tensors multiplied in (the first version)."""
    pad, masks = D.cfg.kernel // 2, []
    with torch.no_grad():
        h = D.input(x)
        for block in D.blocks:
            a = block.conv1(torch.relu(h))
            masks.append(((h > 0).to(h.dtype), (a > 0).to(a.dtype)))
            h = h + block.res_scale * block.conv2(torch.relu(a))
    g = D.output.weight.view(1, D.cfg.dim, D.cfg.seq_len)
    for block, (m1, m2) in zip(reversed(D.blocks), reversed(masks), strict=True):
        t = F.conv_transpose1d(g, block.conv2.weight, padding=pad) * m2
        t = F.conv_transpose1d(t, block.conv1.weight, padding=pad) * m1
        g = g + block.res_scale * t
    return F.conv_transpose1d(g.expand(x.shape[0], -1, -1), D.input.weight)


def loss_explicit_masks(D: Critic, real, fake, eps):
    """loss_explicit with mask multiplications instead of ReLU's fused backward."""
    s = D(torch.cat([real, fake])).float()
    b = real.shape[0]
    grad = _input_grad_masks(D, fake + eps * (real - fake))
    return s[b:].mean() - s[:b].mean() + LIP.lam * _penalty(grad)


VARIANTS: dict[str, tuple[Callable, str, bool]] = {
    # name: (loss, precision, compile)
    "naive": (loss_naive, "fp32", False),
    "batched3": (loss_batched3, "fp32", False),
    "batched2": (loss_batched2, "fp32", False),
    "maskrelu": (loss_maskrelu, "fp32", False),
    "explicit": (loss_explicit, "fp32", False),
    "naive-bf16": (loss_naive, "bf16", False),
    "explicit-bf16-masks": (loss_explicit_masks, "bf16", False),
    "explicit-bf16": (loss_explicit, "bf16", False),
    "explicit-bf16-compile": (loss_explicit, "bf16", True),
}


class Setup:
    """Networks, optimizer and a fixed real batch of one preset."""

    def __init__(self, preset: str, vocab: int) -> None:
        torch.manual_seed(0)
        model = {**PRESETS[preset]["model"]}
        train = TrainConfig(**{**PRESETS[preset]["train"], "preset": preset})
        self.cfg = ModelConfig(vocab_size=vocab, **model)
        self.batch = train.batch_size
        self.G, self.D = Generator(self.cfg), Critic(self.cfg)
        self.opt = torch.optim.Adam(self.D.parameters(), lr=1e-4, betas=(0.5, 0.9))
        self.ids = torch.randint(0, vocab, (self.batch, self.cfg.seq_len))

    def step_fn(self, loss: Callable, precision: str, compiled: bool) -> Callable[[], None]:
        cpu = torch.device("cpu")
        inner = fast.Compiled(loss) if compiled else loss

        def step() -> None:
            with torch.no_grad(), fast.autocast(cpu, precision):
                fake = self.G(self.G.sample_noise(self.batch)).float()
            real = one_hot(self.ids, self.cfg.vocab_size)
            eps = torch.rand(self.batch, 1, 1)
            with fast.autocast(cpu, precision):
                value = inner(self.D, real, fake, eps)
            self.opt.zero_grad(set_to_none=True)
            value.backward()
            self.opt.step()

        return step


CLOCK = time.perf_counter


def time_round_robin(steps: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """Minimum seconds per call of each step, calls interleaved (after one warm-up each)."""
    for name, step in steps.items():
        start = CLOCK()
        step()
        print(f"  warm-up {name}: {CLOCK() - start:.2f} s", flush=True)
    best = dict.fromkeys(steps, float("inf"))
    for _ in range(repeats):
        for name, step in steps.items():
            start = CLOCK()
            step()
            best[name] = min(best[name], CLOCK() - start)
    return best


def conv_formulations(dim: int, batch: int, seq_len: int, kernel: int, repeats: int) -> None:
    """One residual convolution forward + backward, in several formulations and precisions."""
    pad = kernel // 2

    def unfold_mm(x, w):
        cols = F.pad(x, (pad, pad)).unfold(2, kernel, 1)  # (B, C, L, k)
        cols = cols.permute(0, 2, 1, 3).reshape(x.shape[0] * seq_len, -1)
        out = cols @ w.reshape(w.shape[0], -1).t()
        return out.view(x.shape[0], seq_len, -1).transpose(1, 2)

    forms = {
        "conv1d": lambda x, w: F.conv1d(x, w, padding=pad),
        "conv2d": lambda x, w: F.conv2d(x.unsqueeze(2), w.unsqueeze(2), padding=(0, pad)).squeeze(
            2
        ),
        "unfold+matmul": unfold_mm,
        "channels-last conv1d": lambda x, w: F.conv1d(
            x.transpose(1, 2).contiguous().transpose(1, 2), w, padding=pad
        ),
    }
    flops = 3 * 2 * batch * seq_len * dim * dim * kernel  # forward + two backward products
    steps = {}
    for dtype in (torch.float32, torch.bfloat16):
        for name, form in forms.items():
            x = torch.randn(batch, dim, seq_len, dtype=dtype, requires_grad=True)
            w = (torch.randn(dim, dim, kernel) * 0.02).to(dtype).requires_grad_(True)

            def step(form=form, x=x, w=w) -> None:
                form(x, w).sum().backward()

            steps[f"{name} {str(dtype).split('.')[-1]}"] = step
    best = time_round_robin(steps, repeats)
    for name, seconds in best.items():
        print(f"{name:30s} {seconds * 1e3:8.2f} ms  {flops / seconds / 1e9:7.1f} GFLOP/s")


def adam_update(preset: str, vocab: int, repeats: int) -> None:
    """One Adam step on the critic's weights: the default multi-tensor update against fused."""
    cfg = ModelConfig(vocab_size=vocab, **PRESETS[preset]["model"])
    critic = Critic(cfg)
    for p in critic.parameters():
        p.grad = torch.randn_like(p)
    steps = {}
    for name, options in (("foreach (default)", {}), ("fused", {"fused": True})):
        opt = torch.optim.Adam(critic.parameters(), lr=1e-4, betas=(0.5, 0.9), **options)
        steps[name] = opt.step
    best = time_round_robin(steps, repeats)
    n = sum(p.numel() for p in critic.parameters())
    for name, seconds in best.items():
        print(f"Adam on {n:,} critic weights, {name:18s} {seconds * 1e3:8.2f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--preset", default="paper", choices=sorted(PRESETS))
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--vocab", type=int, default=256)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--conv", action="store_true", help="time convolution formulations instead")
    ap.add_argument("--adam", action="store_true", help="time Adam, multi-tensor against fused")
    ap.add_argument(
        "--cpu-time",
        action="store_true",
        help="measure this process's CPU time instead of wall time (robust to other processes' "
        "load; use with --threads 1)",
    )
    args = ap.parse_args()
    if args.cpu_time:
        global CLOCK
        CLOCK = time.process_time
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if args.adam:
        adam_update(args.preset, args.vocab, args.repeats)
        return
    if args.conv:
        cfg = ModelConfig(vocab_size=args.vocab, **PRESETS[args.preset]["model"])
        batch = TrainConfig(**PRESETS[args.preset]["train"]).batch_size
        conv_formulations(cfg.dim, batch, cfg.seq_len, cfg.kernel, args.repeats)
        return
    setup = Setup(args.preset, args.vocab)
    names = args.variants.split(",")
    steps = {n: setup.step_fn(*VARIANTS[n]) for n in names}
    with contextlib.suppress(KeyboardInterrupt):
        best = time_round_robin(steps, args.repeats)
    base = best.get("naive")
    print(f"critic step, preset {args.preset} (vocab {args.vocab}), min of {args.repeats}:")
    for name, seconds in best.items():
        ratio = f"  {base / seconds:5.2f}x vs naive" if base else ""
        print(f"  {name:24s} {seconds:8.3f} s{ratio}")


if __name__ == "__main__":
    main()
