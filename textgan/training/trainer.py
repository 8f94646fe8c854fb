"""One training iteration of WGAN-GP and the state it carries between iterations.

One generator iteration is ``critic_iters`` critic steps followed by one generator step, all with
Adam (the paper: lr 1e-4, β = (0.5, 0.9), 10 critic steps, batch 64; ``lr_critic``/``lr_gen``
give the two networks their own rates, TTUR). Each critic step draws a real batch from the
memory-mapped training ids with the run's data RNG (rows with replacement, cut to
``train.curriculum``'s length), one-hot encodes it on the device and scores it against a
detached generator batch of as many positions; the generator step runs with the critic's
parameters frozen so no critic gradients are computed. ``grad_norm`` (an extra input
gradient for constraints that do not need it) is measured only on the last penalized critic step
before each metrics row (every step is penalized without the lazy penalty).

With ``ema_decay`` > 0 an exponential moving average of the generator's weights follows every
generator step (``Trainer.ema``, evaluated beside the raw generator; it never trains).

Randomness flows from ``TrainConfig.seed``: the torch global RNG initializes the networks, then
three independent streams (``numpy.random.SeedSequence(seed).spawn``) draw real-batch indices,
generator noise and the penalty's ε. Every one of them is saved with each checkpoint, with the
EMA weights and the sums of the current logging interval (``textgan.training.meter``), by
``textgan.training.state``, so a run stopped at iteration k and resumed reproduces, on the CPU,
the uninterrupted run's weights and log rows bit for bit.

Under torchrun (``textgan.training.distributed``) ``--batch-size`` is the global batch: each rank
draws its share of the rows, noise and ε from its own child streams of the three, steps on its local
means, and the ranks' gradients are averaged before each optimizer step, so every rank holds the
same weights. A checkpoint then holds every rank's streams and meter (``ranks``).
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from textgan.config import RunConfig
from textgan.nn import fast, memory
from textgan.nn.lipschitz import after_critic_step, apply_constraint
from textgan.nn.networks import one_hot
from textgan.nn.registry import make_critic, make_generator
from textgan.training import distributed
from textgan.training.curriculum import Curriculum
from textgan.training.meter import Meter

EMA_WARMUP = 10  # the decay ramps as (1 + t) / (EMA_WARMUP + t), see ema_decay_at


def stream_seed(seq: np.random.SeedSequence | list[int]) -> int:
    """A seed in torch's range (63 bits) from a SeedSequence or its entropy: one stream per
    use, independent of the others (``diagnostics`` keys its streams by seed, iteration, use)."""
    if not isinstance(seq, np.random.SeedSequence):
        seq = np.random.SeedSequence(seq)
    return int(seq.generate_state(1, np.uint64)[0] >> 1)


def make_streams(
    seed: int, device: torch.device, rank: int = 0, world: int = 1, iteration: int = 0
) -> tuple[np.random.Generator, torch.Generator, torch.Generator]:
    """The data, noise and ε streams of one rank. A single process gets the streams of
    ``SeedSequence(seed).spawn(3)`` (as before distributed training existed); each rank of a
    larger world gets child ``rank`` of each of them. ``iteration`` > 0 re-derives streams for
    a run resumed with another world size, so that they do not repeat the first draws."""
    root = np.random.SeedSequence(seed if iteration == 0 else [seed, iteration])
    seqs = root.spawn(3)
    if world > 1:
        seqs = [seq.spawn(world)[rank] for seq in seqs]
    data_seq, noise_seq, eps_seq = seqs
    noise = torch.Generator(device).manual_seed(stream_seed(noise_seq))
    eps = torch.Generator(device).manual_seed(stream_seed(eps_seq))
    return np.random.default_rng(data_seq), noise, eps


def real_batch(
    train_ids: np.ndarray,
    rng: np.random.Generator,
    batch_size: int,
    vocab_size: int,
    device: torch.device,
    length: int | None = None,
) -> torch.Tensor:
    """One-hot ``(B, V, length or L)`` rows drawn uniformly with replacement by ``rng``."""
    rows = rng.integers(0, len(train_ids), size=batch_size)
    ids = torch.from_numpy(np.asarray(train_ids[rows, :length], dtype=np.int64))
    if device.type == "cuda":
        ids = ids.pin_memory()  # a copy from pinned memory does not stall the GPU queue
    return one_hot(ids.to(device, non_blocking=True), vocab_size)


def penalty_weight(every: int, critic_step: int) -> float:
    """The factor of λ at the ``critic_step``-th critic step of a run (from 0) under lazy
    regularization: ``every`` on every ``every``-th step, 0 between them."""
    if every == 1:
        return 1.0
    return float(every) if critic_step % every == 0 else 0.0


def lr_scale(decay: str, iteration: int, iters: int) -> float:
    """The factor of the base learning rates at generator iteration ``iteration`` (from 0):
    1 throughout for ``constant``; ``1 − iteration / iters`` for ``linear``, so the last
    iteration trains at ``1/iters`` of the base (never below it, also past ``iters``)."""
    if decay == "constant":
        return 1.0
    return max(1.0 - iteration / iters, 1.0 / iters)


def unigram_logits(train_ids: np.ndarray, vocab_size: int, max_rows: int = 100_000) -> torch.Tensor:
    """Log frequencies of the symbols in (evenly spaced rows of) the training ids, add-one
    smoothed so that every symbol keeps a finite logit."""
    step = max(1, len(train_ids) // max_rows)
    rows = np.asarray(train_ids[::step][:max_rows])
    counts = np.bincount(rows.ravel(), minlength=vocab_size)[:vocab_size].astype(np.float64)
    return torch.from_numpy(np.log((counts + 1) / (counts.sum() + vocab_size))).float()


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
        # --batch-size is the global batch: each rank draws and scores its share of it.
        self.local_batch = distributed.local_batch(t.batch_size)
        # Refuse what cannot fit before allocating any of it.
        memory.check_run(m, self.local_batch, t.ema_decay > 0, device)
        torch.manual_seed(t.seed)
        self.generator = make_generator(m).to(device)
        if t.unigram_init:
            with torch.no_grad():
                self.generator.output.bias.copy_(unigram_logits(train_ids, m.vocab_size))
        self.critic = apply_constraint(make_critic(m).to(device), config.lipschitz)
        betas = (t.beta1, t.beta2)
        self.base_lr = {"gen": t.lr_gen or t.lr, "critic": t.lr_critic or t.lr}
        self.opt_g = fast.adam(self.generator.parameters(), self.base_lr["gen"], betas, device)
        self.opt_d = fast.adam(self.critic.parameters(), self.base_lr["critic"], betas, device)
        self.fast = fast.FastPath(
            self.generator, self.critic, config.lipschitz, device, t.precision, t.compile
        )
        # The same seed gives every rank the same weights; the broadcast makes sure of it.
        distributed.broadcast_module(self.generator)
        distributed.broadcast_module(self.critic)
        # Copied after FastPath so that it has the generator's memory layout.
        self.ema: torch.nn.Module | None = None
        if t.ema_decay > 0:
            self.ema = copy.deepcopy(self.generator).requires_grad_(False)
        self.rank, self.world = distributed.rank(), distributed.world_size()
        self.data_rng, self.noise_rng, self.eps_rng = make_streams(
            t.seed, device, self.rank, self.world
        )
        self.curriculum = Curriculum(t.curriculum, m)
        self.meter = Meter()
        self.iteration = 0
        self.elapsed = 0.0

    def real_batch(self) -> torch.Tensor:
        """This rank's one-hot rows (``real_batch``), at the curriculum's length."""
        args = (self.train_ids, self.data_rng, self.local_batch, self.config.model.vocab_size)
        return real_batch(*args, self.device, self.curriculum.crop)

    def fake_batch(self) -> torch.Tensor:
        z = self.generator.sample_noise(self.local_batch, self.device, generator=self.noise_rng)
        return self.fast.generate(z, self.curriculum.crop)

    def critic_step(
        self, monitor: bool = False, penalty_weight: float = 1.0
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One critic update; ``monitor`` also measures ``grad_norm`` where the loss does not;
        ``penalty_weight`` scales λ (0: a lazy step without the penalty)."""
        real = self.real_batch()
        with torch.no_grad():
            fake = self.fake_batch()
        loss, stats = self.fast.critic_loss(
            real, fake, rng=self.eps_rng, monitor=monitor, penalty_weight=penalty_weight
        )
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        # Each rank's loss is a mean over its rows: the mean of the ranks' gradients is the
        # gradient of the global batch's loss.
        distributed.average_gradients(self.critic.parameters())
        self.opt_d.step()
        after_critic_step(self.critic, self.config.lipschitz)
        return loss.detach(), stats

    def generator_step(self) -> torch.Tensor:
        self.critic.requires_grad_(False)
        try:
            loss = self.fast.generator_loss(self.fake_batch())
            self.opt_g.zero_grad(set_to_none=True)
            loss.backward()
            distributed.average_gradients(self.generator.parameters())
            self.opt_g.step()
        finally:
            self.critic.requires_grad_(True)
        if self.ema is not None:
            decay = ema_decay_at(self.config.train.ema_decay, self.iteration)
            update_ema(self.ema, self.generator, decay)
        return loss.detach()

    def monitored_step(self) -> int:
        """The critic step (counted from the run's start) that measures ``grad_norm`` for the
        next metrics row: the last penalized one at or before that row, which may lie in an
        earlier iteration than the row's own (``_loop``'s schedule; a stop by signal or time
        limit can still log an iteration this does not foresee)."""
        t, k = self.config.train, self.iteration + 1
        row = min(-(-k // t.log_every) * t.log_every, max(t.iters, k))  # the next logged one
        last = row * t.critic_iters - 1
        return last - last % t.penalty_every

    def step(self, meter: Meter | None = None) -> None:
        """One generator iteration: ``critic_iters`` critic steps, then one generator step;
        statistics go to ``meter`` (default: the trainer's own, saved with its state)."""
        meter = self.meter if meter is None else meter
        t = self.config.train
        steps = t.critic_iters
        first, monitored = self.iteration * steps, self.monitored_step()
        scale = lr_scale(t.lr_decay, self.iteration, t.iters)
        self.curriculum.advance(self.iteration, t.iters)
        for opt, base in ((self.opt_g, self.base_lr["gen"]), (self.opt_d, self.base_lr["critic"])):
            for group in opt.param_groups:
                group["lr"] = base * scale
        for i in range(steps):
            weight = penalty_weight(t.penalty_every, first + i)
            # A lazy step has no interpolates to monitor: a penalized step measures grad_norm,
            # also when the row's own iteration has none (penalty_every >= critic_iters).
            loss, stats = self.critic_step(first + i == monitored, weight)
            meter.add({"critic_loss": loss, **stats})
        meter.add({"gen_loss": self.generator_step()})
        if self.curriculum.stages:  # the length the rows had, in the metrics rows
            meter.add({"seq_len": torch.tensor(float(self.curriculum.length), device=self.device)})
        self.iteration += 1

    def params_finite(self) -> bool:
        tensors = [*self.generator.parameters(), *self.critic.parameters()]
        return bool(torch.stack([p.detach().isfinite().all() for p in tensors]).all())
