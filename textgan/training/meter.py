"""The running means of a logging interval (``Meter``), saved with each checkpoint so that a
resumed run's next metrics row averages the same steps as the uninterrupted run's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from textgan.training import distributed


def mean_meter_state(states: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The meter state whose means are the means of the ranks' meters (equal counts)."""
    sums = {k: torch.stack([s["sums"][k] for s in states]).mean(0) for k in states[0]["sums"]}
    return {"sums": sums, "counts": dict(states[0]["counts"])}


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
        """The interval's means, over all ranks (a collective when there are several)."""
        if not self.sums:
            return {}
        counts = torch.tensor([self.counts[k] for k in self.sums], dtype=torch.float32)
        sums = distributed.mean_over_ranks(torch.stack(list(self.sums.values())))
        values = sums.cpu() / counts
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
