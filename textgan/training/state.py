"""What a checkpoint holds of a trainer besides the weights, and putting it back: optimizers,
counters, the EMA weights, the logging interval's sums and every random stream, so that a run
resumed at iteration k reproduces the uninterrupted run bit for bit (on the CPU). Under torchrun
``ranks`` holds every rank's streams and meter, in rank order."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from textgan.errors import UserError, first_line
from textgan.files.checkpoint import EMA_KEY, FORMAT_VERSION, Checkpoint
from textgan.nn import fast
from textgan.training import distributed
from textgan.training.curriculum import STATE_KEY
from textgan.training.meter import mean_meter_state
from textgan.training.trainer import Trainer, make_streams

RANKS_KEY = "ranks"  # every rank's random streams and meter, in rank order (world > 1)


def _rng_state(trainer: Trainer) -> dict[str, Any]:
    rng: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "data": trainer.data_rng.bit_generator.state,
        "noise": trainer.noise_rng.get_state(),
        "eps": trainer.eps_rng.get_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def trainer_state(trainer: Trainer) -> dict[str, Any]:
    """Everything but the weights, in types ``torch.load(weights_only=True)`` reads.

    With several ranks this is a collective (call it on every rank): ``ranks`` holds each
    rank's streams and meter, and ``rng``/``meter`` are rank 0's streams and the ranks'
    mean meter, which is what a resume with another world size continues from."""
    rng, meter = _rng_state(trainer), trainer.meter.state_dict()
    extra: dict[str, Any] = {}
    if trainer.world > 1:
        ranks = distributed.gather_objects({"rng": rng, "meter": meter})
        rng, meter = ranks[0]["rng"], mean_meter_state([r["meter"] for r in ranks])
        extra = {"world_size": trainer.world, RANKS_KEY: ranks}
    state = {
        "format": FORMAT_VERSION,  # what load_state accepts
        "iteration": trainer.iteration,
        "elapsed": trainer.elapsed,
        STATE_KEY: trainer.curriculum.length,
        "optimizer_g": trainer.opt_g.state_dict(),
        "optimizer_d": trainer.opt_d.state_dict(),
        "rng": rng,
        "meter": meter,
        **extra,
    }
    if trainer.ema is not None:
        state[EMA_KEY] = {k: v.detach().contiguous() for k, v in trainer.ema.state_dict().items()}
    return state


def restore(trainer: Trainer, ckpt: Checkpoint) -> str | None:
    """Restore weights, optimizers, counters and every RNG stream from a checkpoint; a
    one-line notice when it was written by another number of processes than this run's
    (the streams are then re-derived and the continuation is not bit-exact)."""
    saved_world = int(ckpt.state.get("world_size", 1))
    rank_state = _rank_state(ckpt.state, trainer.rank, trainer.world)
    try:
        rng = rank_state["rng"]
        size = trainer.noise_rng.get_state().numel()
        if any(torch.is_tensor(rng[k]) and rng[k].numel() != size for k in ("noise", "eps")):
            # A CPU generator's state is Mersenne Twister, a CUDA one's a Philox seed and
            # offset: neither continues as the other, so the run cannot resume exactly here.
            raise UserError(
                f"checkpoint {ckpt.path} was written on another kind of device than "
                f"{trainer.device.type}: its noise and ε streams cannot continue here; resume "
                "it with the --device it was trained with"
            )
        trainer.generator.load_state_dict(ckpt.generator)
        trainer.critic.load_state_dict(ckpt.critic)
        state = ckpt.state
        trainer.opt_g.load_state_dict(state["optimizer_g"])
        trainer.opt_d.load_state_dict(state["optimizer_d"])
        fast.match_optimizer_layout(trainer.opt_g, trainer.opt_d)
        torch.set_rng_state(rng["torch"])
        trainer.data_rng.bit_generator.state = rng["data"]
        trainer.noise_rng.set_state(rng["noise"])
        trainer.eps_rng.set_state(rng["eps"])
        cuda = rng.get("cuda")
        if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
        trainer.iteration = int(state["iteration"])
        trainer.elapsed = float(state["elapsed"])
        trainer.curriculum.load(state)
        trainer.meter.load_state_dict(rank_state.get("meter", {}), trainer.device)
        if trainer.ema is not None:
            # A checkpoint from before EMA existed starts its average here.
            trainer.ema.load_state_dict(state.get(EMA_KEY, ckpt.generator))
    except (KeyError, RuntimeError, ValueError, TypeError) as err:
        raise UserError(
            f"checkpoint {ckpt.path} does not fit this run's model ({first_line(err)}); "
            "it belongs to another configuration"
        ) from None
    if trainer.iteration != ckpt.iteration:
        raise UserError(f"checkpoint {ckpt.path}: its state says iteration {trainer.iteration}")
    if saved_world == trainer.world:
        return None
    seed = trainer.config.train.seed
    streams = make_streams(seed, trainer.device, trainer.rank, trainer.world, trainer.iteration)
    trainer.data_rng, trainer.noise_rng, trainer.eps_rng = streams
    return (
        f"textgan train: checkpoint {ckpt.path} was written by {saved_world} process(es) and "
        f"this run has {trainer.world}: the data, noise and ε streams are re-derived from "
        f"--seed, rank and iteration {trainer.iteration}, so the run continues, not bit for bit"
    )


def _rank_state(state: Mapping[str, Any], rank: int, world: int) -> Mapping[str, Any]:
    """This rank's saved streams and meter: its own when the world size is the saved one,
    else rank 0's streams (replaced after loading) and the ranks' mean meter."""
    ranks = state.get(RANKS_KEY)
    if ranks is not None and len(ranks) == world:
        return ranks[rank]
    return {"rng": state.get("rng"), "meter": state.get("meter", {})}
