"""Data-parallel training under ``torchrun``: the process group, ranks and the collectives a
run needs.

``torchrun --nproc-per-node N -m textgan train …`` starts N processes with ``WORLD_SIZE``,
``RANK`` and ``LOCAL_RANK`` in their environment; ``setup`` joins them into one process group
(gloo on the CPU, nccl on CUDA, one device per local rank). Without those variables (a plain
``textgan train``) every function here is a no-op for a world of one process, so the
single-process run takes exactly the code path it always did.

Gradients are averaged explicitly (``average_gradients``, one all-reduce of a flattened buffer
per network and step) instead of through ``DistributedDataParallel``'s autograd hooks: the fast
path computes the critic's input gradient in closed form from its layers, not through
``forward``, and the generator step runs with the critic frozen, both of which DDP's reducer
does not follow. The average of the ranks' gradients of their local means is the gradient of the
global mean when every rank holds the same number of rows, which is what DDP computes.

A collective that fails (a rank died, or did not answer within ``--dist-timeout`` seconds)
raises ``DistributedError``, a one-line ``UserError``: the job ends instead of hanging.
"""

from __future__ import annotations

import atexit
import importlib
import os
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any, TypeVar

import torch
from torch import distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from textgan.errors import UserError, first_line

T = TypeVar("T")


class DistributedError(UserError):
    """A collective failed: another rank is gone or did not answer in time."""


class PeerRefused(UserError):
    """Rank 0 refused to start (``rank0_decides``): its message, on another rank. Rank 0 prints
    it for the whole job; the other ranks end with it silently."""


def env_world_size() -> int:
    """Processes in the job as torchrun announces them (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_rank0() -> bool:
    return rank() == 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def setup(device: torch.device, timeout_s: float) -> bool:
    """Join torchrun's process group once (idempotent); False for a single process."""
    if active():
        return True
    if env_world_size() <= 1:
        return False
    if device.type not in ("cpu", "cuda"):  # gloo reduces CPU tensors, nccl CUDA ones
        raise UserError(
            f"torchrun runs textgan on CPUs (gloo) or CUDA GPUs (nccl), not on {device.type}; "
            "pass --device cpu or cuda"
        )
    if device.type == "cuda":
        torch.cuda.set_device(local_device(device))  # nccl's object collectives use it
    backend = "nccl" if device.type == "cuda" else "gloo"
    # Imported after joining, this module binds the group as the default argument of ten
    # functions (it comes with the first optimizer, through torch._dynamo): destroy_process_group
    # could not free the group then, and its backend's threads would live on into interpreter
    # exit, where one that lets go of a finished collective's tensor needs the GIL and aborts
    # the process ("terminate called without an active exception").
    importlib.import_module("torch.distributed.nn.functional")
    try:
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    except (RuntimeError, ValueError) as err:
        raise DistributedError(
            f"cannot join the distributed job ({first_line(err)}); start every rank with "
            "torchrun and the same --rdzv-endpoint"
        ) from None
    atexit.register(shutdown)
    return True


def shutdown() -> None:
    """Leave the job; the backend's threads end here, while the interpreter is whole."""
    if active():
        dist.destroy_process_group()


def local_device(device: torch.device) -> torch.device:
    """One CUDA device per local rank; other device kinds are shared as they are."""
    if device.type == "cuda" and env_world_size() > 1:
        return torch.device("cuda", local_rank())
    return device


def local_batch(batch_size: int) -> int:
    """Each rank's share of the global ``--batch-size``."""
    world = world_size()
    if batch_size % world:
        raise UserError(
            f"--batch-size {batch_size} does not split over {world} processes: it is the global "
            f"batch, so give a multiple of {world}"
        )
    return batch_size // world


def _collective(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args)``, a failed collective turned into a one-line error."""
    try:
        return fn(*args, **kwargs)
    except RuntimeError as err:  # DistBackendError and gloo's errors are RuntimeErrors
        raise DistributedError(
            f"rank {rank()}: another process of the job failed or did not answer "
            f"({first_line(err)}); the last checkpoint is intact: resume it with --resume"
        ) from None


def _flag_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def average_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """Replace every gradient by its mean over the ranks (one all-reduce for all of them)."""
    if not active():
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = _flatten_dense_tensors(grads)
    _collective(dist.all_reduce, flat)
    flat.div_(world_size())
    for grad, mean in zip(grads, _unflatten_dense_tensors(flat, grads), strict=True):
        grad.copy_(mean)


def mean_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """The element-wise mean of ``values`` over the ranks (the tensor itself alone)."""
    if not active():
        return values
    total = values.detach().clone()
    _collective(dist.all_reduce, total)
    return total / world_size()


def agree_max(values: Iterable[float]) -> list[float]:
    """Each value's maximum over the ranks: a flag any rank raises is raised on all of them."""
    values = list(values)
    if not active():
        return values
    flags = torch.tensor(values, dtype=torch.float64, device=_flag_device())
    _collective(dist.all_reduce, flags, op=dist.ReduceOp.MAX)
    return flags.tolist()


def agree_signal(signal: int | None) -> int | None:
    """The stop signal of any rank (the highest number), so every rank stops together."""
    (value,) = agree_max([signal or 0])
    return int(value) or None


def gather_objects(obj: T) -> list[T]:
    """``obj`` of every rank, in rank order, on every rank."""
    if not active():
        return [obj]
    out: list[Any] = [None] * world_size()
    _collective(dist.all_gather_object, out, obj)
    return out


def broadcast_object(obj: T) -> T:
    """Rank 0's ``obj`` on every rank."""
    if not active():
        return obj
    box = [obj]
    _collective(dist.broadcast_object_list, box, src=0)
    return box[0]


@torch.no_grad()
def broadcast_module(module: torch.nn.Module) -> None:
    """Rank 0's parameters and buffers on every rank."""
    if active():
        for tensor in [*module.parameters(), *module.buffers()]:
            # Position-major (channels-last) weights are not contiguous; collectives need it.
            buffer = tensor.data.contiguous()
            _collective(dist.broadcast, buffer, src=0)
            if buffer.data_ptr() != tensor.data.data_ptr():
                tensor.data.copy_(buffer)


def rank0_decides(fn: Callable[[], T]) -> T | None:
    """``fn()`` on rank 0 alone (None on the others). A ``UserError`` it raises ends every rank:
    rank 0 raises it, the others ``PeerRefused`` with the same message, instead of waiting for
    a rank that is gone and each failing its own way."""
    result, refusal = None, None
    if is_rank0():
        try:
            result = fn()
        except UserError as err:
            refusal = err
    message = broadcast_object(None if refusal is None else str(refusal))
    if refusal is not None:
        raise refusal
    if message is not None:
        raise PeerRefused(message)
    return result
