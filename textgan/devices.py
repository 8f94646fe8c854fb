"""The machine a run uses: which device (``auto`` picks CUDA, then MPS, then the CPU) and how
much memory a process may take there.

The memory a process may take is the smallest of the machine's, its cgroup's and what its
address-space and data limits (``ulimit -v``, ``ulimit -d``) leave. Torch is imported where a
device is chosen, not here: the corpus and the metrics ask for the memory limit alone.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path
from typing import TYPE_CHECKING

from textgan.errors import UserError

if TYPE_CHECKING:
    import torch


def parse_device(name: str) -> torch.device:
    """``name`` as a device of a kind textgan runs on; UserError for anything else."""
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:  # not a device string at all, e.g. "tpu" or "cuda:x"
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise UserError(f"unknown device {name!r}; use auto, cpu, cuda[:N] or mps")
    return device


def pick_device(name: str) -> torch.device:
    """``auto``: CUDA, then MPS, then the CPU. An explicit device must exist."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = parse_device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(
                "--device cuda: PyTorch sees no CUDA GPU here; use --device auto or cpu"
            )
        count = torch.cuda.device_count()
        if (device.index or 0) >= count:
            raise UserError(
                f"--device {name}: PyTorch sees {count} CUDA GPU(s) here, cuda:0 to "
                f"cuda:{count - 1}; pick one of them or use --device auto"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError("--device mps: the MPS backend is not available; use --device auto or cpu")
    return device


def _status_bytes(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` in bytes (None where there is none)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def limit_headroom() -> int | None:
    """Bytes the address-space and data limits of this process leave it, None when unlimited:
    an allocation beyond fails whatever the machine has."""
    room = []
    for limit, field in ((resource.RLIMIT_AS, "VmSize"), (resource.RLIMIT_DATA, "VmData")):
        soft = resource.getrlimit(limit)[0]
        if soft != resource.RLIM_INFINITY:
            room.append(max(0, soft - (_status_bytes(field) or 0)))
    return min(room, default=None)


def memory_limit() -> int:
    """Bytes of memory this process may use: the machine's, or its cgroup's or what its
    ``ulimit`` limits leave when lower."""
    limit = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    headroom = limit_headroom()
    if headroom is not None:
        limit = min(limit, headroom)
    try:
        cgroup = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        return limit
    return min(limit, int(cgroup)) if cgroup.isdigit() else limit


def device_memory(device: object) -> int | None:
    """Bytes of memory ``device`` has in all (CUDA: the GPU's; CPU and MPS: the machine's, or
    its cgroup's when lower), None where it cannot be known."""
    kind = getattr(device, "type", str(device))
    if kind == "cuda":
        import torch

        return int(torch.cuda.mem_get_info(device)[1])
    try:
        return memory_limit()
    except (ValueError, OSError, AttributeError):  # a platform without these sysconf names
        return None
