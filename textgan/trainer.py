"""One training iteration of WGAN-GP and the state it carries between iterations.

One generator iteration is ``critic_iters`` critic steps followed by one generator step, all with
Adam (the paper: lr 1e-4, β = (0.5, 0.9), 10 critic steps, batch 64). Each critic step draws a
real batch from the memory-mapped training ids with the run's data RNG, one-hot encodes it on the
device and scores it against a detached generator batch; the generator step runs with the
critic's parameters frozen so no critic gradients are computed.

Randomness flows from ``TrainConfig.seed``: the torch global RNG initializes the networks, then
three independent streams (``numpy.random.SeedSequence(seed).spawn``) draw real-batch indices,
generator noise and the penalty's ε. Every one of them is saved with each checkpoint (with the
statistics of the current logging interval), so a run stopped at iteration k and resumed
reproduces, on the CPU, the uninterrupted run bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from textgan import fast
from textgan.checkpoint import FORMAT_VERSION, Checkpoint
from textgan.config import RunConfig
from textgan.errors import UserError, first_line
from textgan.lipschitz import after_critic_step, apply_constraint
from textgan.models import Critic, Generator, one_hot


def seed_int(seq: np.random.SeedSequence) -> int:
    return int(seq.generate_state(1, np.uint64)[0] >> 1)


class Trainer:
    """The networks, optimizers and random streams of one run, and one training iteration."""

    def __init__(self, config: RunConfig, train_ids: np.ndarray, device: torch.device) -> None:
        t, m = config.train, config.model
        self.config = config
        self.device = device
        self.train_ids = train_ids
        torch.manual_seed(t.seed)
        self.generator = Generator(m).to(device)
        self.critic = apply_constraint(Critic(m).to(device), config.lipschitz)
        betas = (t.beta1, t.beta2)
        self.opt_g = fast.adam(self.generator.parameters(), t.lr, betas, device)
        self.opt_d = fast.adam(self.critic.parameters(), t.lr, betas, device)
        self.fast = fast.FastPath(
            self.generator, self.critic, config.lipschitz, device, t.precision, t.compile
        )
        data_seq, noise_seq, eps_seq = np.random.SeedSequence(t.seed).spawn(3)
        self.data_rng = np.random.default_rng(data_seq)
        self.noise_rng = torch.Generator(device).manual_seed(seed_int(noise_seq))
        self.eps_rng = torch.Generator(device).manual_seed(seed_int(eps_seq))
        self.iteration = 0
        self.elapsed = 0.0

    def real_batch(self) -> torch.Tensor:
        """A one-hot ``(B, V, L)`` batch of training rows drawn with replacement."""
        rows = self.data_rng.integers(0, len(self.train_ids), size=self.config.train.batch_size)
        ids = torch.from_numpy(np.asarray(self.train_ids[rows], dtype=np.int64))
        if self.device.type == "cuda":
            ids = ids.pin_memory()  # a copy from pinned memory does not stall the GPU queue
        return one_hot(ids.to(self.device, non_blocking=True), self.config.model.vocab_size)

    def fake_batch(self) -> torch.Tensor:
        z = self.generator.sample_noise(
            self.config.train.batch_size, self.device, generator=self.noise_rng
        )
        return self.fast.generate(z)

    def critic_step(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        real = self.real_batch()
        with torch.no_grad():
            fake = self.fake_batch()
        loss, stats = self.fast.critic_loss(real, fake, rng=self.eps_rng)
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
        return loss.detach()

    def step(self, meter: Meter) -> None:
        """One generator iteration: ``critic_iters`` critic steps, then one generator step."""
        for _ in range(self.config.train.critic_iters):
            loss, stats = self.critic_step()
            meter.add("critic", {"critic_loss": loss, **stats})
        meter.add("gen", {"gen_loss": self.generator_step()})
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
        return {
            "format": FORMAT_VERSION,  # what load_state accepts
            "iteration": self.iteration,
            "elapsed": self.elapsed,
            "optimizer_g": self.opt_g.state_dict(),
            "optimizer_d": self.opt_d.state_dict(),
            "rng": rng,
        }

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
        except (KeyError, RuntimeError, ValueError, TypeError) as err:
            raise UserError(
                f"checkpoint {ckpt.path} does not fit this run's model ({first_line(err)}); "
                "it belongs to another configuration"
            ) from None
        if self.iteration != ckpt.iteration:
            raise UserError(f"checkpoint {ckpt.path}: its state says iteration {self.iteration}")


class Meter:
    """Sums of detached statistics on the device (no synchronization per step)."""

    def __init__(self) -> None:
        self.sums: dict[str, dict[str, torch.Tensor]] = {}
        self.counts: dict[str, int] = {}

    def add(self, group: str, stats: Mapping[str, torch.Tensor]) -> None:
        sums = self.sums.setdefault(group, {})
        for key, value in stats.items():
            value = value.detach().float()
            sums[key] = sums[key] + value if key in sums else value.clone()
        self.counts[group] = self.counts.get(group, 0) + 1

    def means(self) -> dict[str, float]:
        out = {}
        for group, sums in self.sums.items():
            if sums:
                values = torch.stack(list(sums.values())).cpu() / self.counts[group]
                out.update(zip(sums, values.tolist(), strict=True))
        return out

    def reset(self) -> None:
        self.sums.clear()
        self.counts.clear()


LOSS_KEYS = ("critic_loss", "gen_loss", "wasserstein", "gp")


def nonfinite(means: Mapping[str, float]) -> list[str]:
    return [k for k in LOSS_KEYS if k in means and not math.isfinite(means[k])]
