"""textgan: character-level text GANs (WGAN-GP, Gulrajani et al. 2017) as a toolkit.

The public API (``textgan.prepare``, ``fit``, ``resume``, ``load_generator``, ``sample``,
``score``, ``from_pretrained`` and the config classes) is loaded on first use, so
``import textgan`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "prepare": "textgan.api",
    "fit": "textgan.api",
    "resume": "textgan.api",
    "load_generator": "textgan.api",
    "sample": "textgan.api",
    "score": "textgan.api",
    "CorpusConfig": "textgan.corpus",
    "ModelConfig": "textgan.config",
    "LipschitzConfig": "textgan.config",
    "TrainConfig": "textgan.config",
    "RunConfig": "textgan.config",
    "Generator": "textgan.nn.networks",
    "from_pretrained": "textgan.sharing.hub",
    "Critic": "textgan.nn.networks",
    "UserError": "textgan.errors",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'textgan' has no attribute {name!r}")
