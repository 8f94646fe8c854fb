"""One training iteration of WGAN-GP and the state it carries between iterations.

One generator iteration is ``critic_iters`` critic steps followed by one generator step, all with
Adam (the paper: lr 1e-4, β = (0.5, 0.9), 10 critic steps, batch 64; ``lr_critic``/``lr_gen``
give the two networks their own rates, TTUR). Each critic step draws a real batch from the
memory-mapped training ids with the run's data RNG (rows with replacement), one-hot encodes it on
the device and scores it against a detached generator batch; the generator step runs with the
critic's parameters frozen so no critic gradients are computed. ``grad_norm`` (an extra input
gradient for constraints that do not need it) is measured only on the last critic step of an
iteration that is logged.

With ``ema_decay`` > 0 an exponential moving average of the generator's weights follows every
generator step (``Trainer.ema``, evaluated beside the raw generator; it never trains).

Randomness flows from ``TrainConfig.seed``: the torch global RNG initializes the networks, then
three independent streams (``numpy.random.SeedSequence(seed).spawn``) draw real-batch indices,
generator noise and the penalty's ε. Every one of them is saved with each checkpoint, with the
EMA weights and the sums of the current logging interval (``Meter``), so a run stopped at
iteration k and resumed reproduces, on the CPU, the uninterrupted run's weights and log rows bit
for bit.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from textgan import fast, memory
from textgan.checkpoint import FORMAT_VERSION, Checkpoint
from textgan.config import RunConfig
from textgan.errors import UserError, first_line
from textgan.lipschitz import after_critic_step, apply_constraint
from textgan.models import Critic, Generator, one_hot

EMA_KEY = "ema_generator"  # the EMA weights in the checkpoint's state
EMA_WARMUP = 10  # the decay ramps as (1 + t) / (EMA_WARMUP + t), see ema_decay_at


def stream_seed(seq: np.random.SeedSequence | list[int]) -> int:
    """A seed in torch's range (63 bits) from a SeedSequence or its entropy: one stream per
    use, independent of the others (``diagnostics`` keys its streams by seed, iteration, use)."""
    if not isinstance(seq, np.random.SeedSequence):
        seq = np.random.SeedSequence(seq)
    return int(seq.generate_state(1, np.uint64)[0] >> 1)


def real_batch(
    train_ids: np.ndarray,
    rng: np.random.Generator,
    batch_size: int,
    vocab_size: int,
    device: torch.device,
) -> torch.Tensor:
    """A one-hot ``(B, V, L)`` batch of rows drawn uniformly with replacement by ``rng``."""
    rows = rng.integers(0, len(train_ids), size=batch_size)
    ids = torch.from_numpy(np.asarray(train_ids[rows], dtype=np.int64))
    if device.type == "cuda":
        ids = ids.pin_memory()  # a copy from pinned memory does not stall the GPU queue
    return one_hot(ids.to(device, non_blocking=True), vocab_size)


def ema_decay_at(decay: float, t: int) -> float:
    """The decay of the ``t``-th update (from 0): ``decay``, ramped up over the first updates
    as TensorFlow's ``ExponentialMovingAverage(num_updates=t)`` does, so that a short run's
    average is not dominated by the random initial weights (0.999⁴⁰⁰ = 0.67)."""
    return min(decay, (1 + t) / (EMA_WARMUP + t))


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """``ema = decay · ema + (1 − decay) · w`` for every parameter; buffers are copied."""
    for avg, w in zip(ema.parameters(), model.parameters(), strict=True):
        avg.mul_(decay).add_(w.detach(), alpha=1.0 - decay)
    for avg, b in zip(ema.buffers(), model.buffers(), strict=True):
        avg.copy_(b)


class Trainer:
    """The networks, optimizers and random streams of one run, and one training iteration."""

    def __init__(self, config: RunConfig, train_ids: np.ndarray, device: torch.device) -> None:
        t, m = config.train, config.model
        self.config = config
        self.device = device
        self.train_ids = train_ids
        # Refuse what cannot fit before allocating any of it.
        memory.check_run(m, t.batch_size, t.ema_decay > 0, device)
        torch.manual_seed(t.seed)
        self.generator = Generator(m).to(device)
        self.critic = apply_constraint(Critic(m).to(device), config.lipschitz)
        betas = (t.beta1, t.beta2)
        self.opt_g = fast.adam(self.generator.parameters(), t.lr_gen or t.lr, betas, device)
        self.opt_d = fast.adam(self.critic.parameters(), t.lr_critic or t.lr, betas, device)
        self.fast = fast.FastPath(
            self.generator, self.critic, config.lipschitz, device, t.precision, t.compile
        )
        # Copied after FastPath so that it has the generator's memory layout.
        self.ema: Generator | None = None
        if t.ema_decay > 0:
            self.ema = copy.deepcopy(self.generator).requires_grad_(False)
        data_seq, noise_seq, eps_seq = np.random.SeedSequence(t.seed).spawn(3)
        self.data_rng = np.random.default_rng(data_seq)
        self.noise_rng = torch.Generator(device).manual_seed(stream_seed(noise_seq))
        self.eps_rng = torch.Generator(device).manual_seed(stream_seed(eps_seq))
        self.meter = Meter()
        self.iteration = 0
        self.elapsed = 0.0

    def real_batch(self) -> torch.Tensor:
        """A one-hot ``(B, V, L)`` batch of training rows drawn with replacement."""
        t, m = self.config.train, self.config.model
        return real_batch(self.train_ids, self.data_rng, t.batch_size, m.vocab_size, self.device)

    def fake_batch(self) -> torch.Tensor:
        z = self.generator.sample_noise(
            self.config.train.batch_size, self.device, generator=self.noise_rng
        )
        return self.fast.generate(z)

    def critic_step(self, monitor: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One critic update; ``monitor`` also measures ``grad_norm`` where the loss does not."""
        real = self.real_batch()
        with torch.no_grad():
            fake = self.fake_batch()
        loss, stats = self.fast.critic_loss(real, fake, rng=self.eps_rng, monitor=monitor)
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        after_critic_step(self.critic, self.config.lipschitz)
        return loss.detach(), stats

    def generator_step(self) -> torch.Tensor:
        self.critic.requires_grad_(False)
        try:
            loss = self.fast.generator_loss(self.fake_batch())
            self.opt_g.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_g.step()
        finally:
            self.critic.requires_grad_(True)
        if self.ema is not None:
            decay = ema_decay_at(self.config.train.ema_decay, self.iteration)
            update_ema(self.ema, self.generator, decay)
        return loss.detach()

    def logs_next(self) -> bool:
        """Whether the coming iteration ends with a metrics row (``_loop``'s schedule; a stop
        by signal or time limit can still log an iteration this does not foresee)."""
        t, k = self.config.train, self.iteration + 1
        return k % t.log_every == 0 or k == t.iters

    def step(self, meter: Meter | None = None) -> None:
        """One generator iteration: ``critic_iters`` critic steps, then one generator step;
        statistics go to ``meter`` (default: the trainer's own, saved with its state)."""
        meter = self.meter if meter is None else meter
        steps = self.config.train.critic_iters
        monitor = self.logs_next()
        for i in range(steps):
            loss, stats = self.critic_step(monitor=monitor and i == steps - 1)
            meter.add({"critic_loss": loss, **stats})
        meter.add({"gen_loss": self.generator_step()})
        self.iteration += 1

    def params_finite(self) -> bool:
        tensors = [*self.generator.parameters(), *self.critic.parameters()]
        return bool(torch.stack([p.detach().isfinite().all() for p in tensors]).all())

    # -- checkpoint state ----------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything but the weights, in types ``torch.load(weights_only=True)`` reads."""
        rng: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "data": self.data_rng.bit_generator.state,
            "noise": self.noise_rng.get_state(),
            "eps": self.eps_rng.get_state(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        state = {
            "format": FORMAT_VERSION,  # what load_state accepts
            "iteration": self.iteration,
            "elapsed": self.elapsed,
            "optimizer_g": self.opt_g.state_dict(),
            "optimizer_d": self.opt_d.state_dict(),
            "rng": rng,
            "meter": self.meter.state_dict(),
        }
        if self.ema is not None:
            state[EMA_KEY] = {k: v.detach().contiguous() for k, v in self.ema.state_dict().items()}
        return state

    def load(self, ckpt: Checkpoint) -> None:
        """Restore weights, optimizers, counters and every RNG stream from a checkpoint."""
        try:
            rng = ckpt.state["rng"]
            size = self.noise_rng.get_state().numel()
            if any(torch.is_tensor(rng[k]) and rng[k].numel() != size for k in ("noise", "eps")):
                # A CPU generator's state is Mersenne Twister, a CUDA one's a Philox seed and
                # offset: neither continues as the other, so the run cannot resume exactly here.
                raise UserError(
                    f"checkpoint {ckpt.path} was written on another kind of device than "
                    f"{self.device.type}: its noise and ε streams cannot continue here; resume "
                    "it with the --device it was trained with"
                )
            self.generator.load_state_dict(ckpt.generator)
            self.critic.load_state_dict(ckpt.critic)
            state = ckpt.state
            self.opt_g.load_state_dict(state["optimizer_g"])
            self.opt_d.load_state_dict(state["optimizer_d"])
            fast.match_optimizer_layout(self.opt_g, self.opt_d)
            torch.set_rng_state(rng["torch"])
            self.data_rng.bit_generator.state = rng["data"]
            self.noise_rng.set_state(rng["noise"])
            self.eps_rng.set_state(rng["eps"])
            cuda = rng.get("cuda")
            if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(cuda)
            self.iteration = int(state["iteration"])
            self.elapsed = float(state["elapsed"])
            self.meter.load_state_dict(state.get("meter", {}), self.device)
            if self.ema is not None:
                # A checkpoint from before EMA existed starts its average here.
                self.ema.load_state_dict(state.get(EMA_KEY, ckpt.generator))
        except (KeyError, RuntimeError, ValueError, TypeError) as err:
            raise UserError(
                f"checkpoint {ckpt.path} does not fit this run's model ({first_line(err)}); "
                "it belongs to another configuration"
            ) from None
        if self.iteration != ckpt.iteration:
            raise UserError(f"checkpoint {ckpt.path}: its state says iteration {self.iteration}")


class Meter:
    """Sums of detached statistics on the device (no synchronization per step), each averaged
    over the steps that reported it (``grad_norm`` comes from logged steps only)."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, stats: Mapping[str, torch.Tensor]) -> None:
        for key, value in stats.items():
            value = value.detach().float()
            self.sums[key] = self.sums[key] + value if key in self.sums else value.clone()
            self.counts[key] = self.counts.get(key, 0) + 1

    def means(self) -> dict[str, float]:
        if not self.sums:
            return {}
        counts = torch.tensor([self.counts[k] for k in self.sums], dtype=torch.float32)
        values = torch.stack(list(self.sums.values())).cpu() / counts
        return dict(zip(self.sums, values.tolist(), strict=True))

    def reset(self) -> None:
        self.sums.clear()
        self.counts.clear()

    def state_dict(self) -> dict[str, Any]:
        """The interval so far, so that a resumed run's next row averages the same steps."""
        return {"sums": {k: v.cpu() for k, v in self.sums.items()}, "counts": dict(self.counts)}

    def load_state_dict(self, state: Mapping[str, Any], device: torch.device) -> None:
        self.sums = {k: v.to(device) for k, v in state.get("sums", {}).items()}
        self.counts = {k: int(v) for k, v in state.get("counts", {}).items()}


LOSS_KEYS = ("critic_loss", "gen_loss", "wasserstein", "gp")


def nonfinite(means: Mapping[str, float]) -> list[str]:
    return [k for k in LOSS_KEYS if k in means and not math.isfinite(means[k])]
