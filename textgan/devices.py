"""Which device a run or a sampler uses: ``auto`` picks CUDA, then MPS, then the CPU."""

from __future__ import annotations

import torch

from textgan.errors import UserError


def parse_device(name: str) -> torch.device:
    """``name`` as a device of a kind textgan runs on; UserError for anything else."""
    try:
        device = torch.device(name)
    except RuntimeError:  # not a device string at all, e.g. "tpu" or "cuda:x"
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise UserError(f"unknown device {name!r}; use auto, cpu, cuda[:N] or mps")
    return device


def pick_device(name: str) -> torch.device:
    """``auto``: CUDA, then MPS, then the CPU. An explicit device must exist."""
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
