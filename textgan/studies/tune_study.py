"""The Optuna side of ``textgan tune``: storage, sampler, pruner, and the study itself.

``--storage`` is an SQLAlchemy URL (``sqlite:///F.db``, ``postgresql://…``, ``mysql://…``) or
``journal:F.log`` (Optuna's journal file, for shared file systems without a database server);
it is checked before anything runs. A study records the settings it was started with, and a
rerun or another process with different ones is refused: their trials would not compare.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from textgan.errors import UserError, first_line

PRUNERS = ("median", "halving", "none")


JOURNAL = "journal:"


def storage_url(url: str | None, out: Path) -> str:
    """``--storage`` checked before anything runs (the default: a SQLite file in ``out``);
    UserError for one that is not a storage URL."""
    if url is None:
        return f"sqlite:///{out / 'optuna.db'}"
    if url.startswith(JOURNAL):
        path = url.removeprefix(JOURNAL)
        if not path or not Path(path).parent.is_dir():
            raise UserError(f"--storage {url}: the journal file's folder does not exist")
        return url
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError:
        backend = None
    if backend not in ("sqlite", "postgresql", "mysql"):
        raise UserError(
            f"--storage {url!r} is not a storage URL; give sqlite:///FILE.db, "
            "postgresql://USER@HOST/DB, mysql://USER@HOST/DB or journal:FILE.log"
        )
    return url


def open_storage(url: str) -> Any:
    """The Optuna storage at a checked URL; UserError when it cannot be opened."""
    import optuna
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    if url.startswith(JOURNAL):
        backend = optuna.storages.journal.JournalFileBackend(url.removeprefix(JOURNAL))
        return optuna.storages.JournalStorage(backend)
    try:
        return optuna.storages.RDBStorage(url)
    except ImportError as err:
        # The extra brings psycopg and the SQLAlchemy (2.1) that loads it for postgresql://.
        name = make_url(url).drivername
        fix = "pip install 'textgan[postgres]'"
        if name not in ("postgresql", "postgresql+psycopg"):
            fix = f"install the Python driver that {name}:// names"
        raise UserError(f"--storage {url}: its database driver is missing ({err}); {fix}") from None
    except SQLAlchemyError as err:
        raise UserError(f"--storage {url}: cannot open it ({first_line(err)})") from None


def make_pruner(name: str) -> Any:
    """The pruner named by ``--pruner``."""
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner()
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


def make_sampler(seed: int, trial_number: int) -> Any:
    """The TPE sampler that draws trial ``trial_number``'s settings (its seed from both)."""
    import numpy as np
    import optuna

    state = np.random.SeedSequence([seed, trial_number]).generate_state(1)[0]
    return optuna.samplers.TPESampler(seed=int(state))


def open_study(storage: Any, name: str, seed: int, pruner: str, identity: dict[str, Any]) -> Any:
    """Create the study or load it; a study started with other settings is refused."""
    import optuna

    study = optuna.create_study(
        storage=storage,
        study_name=name,
        load_if_exists=True,
        direction="minimize",
        sampler=make_sampler(seed, 0),
        pruner=make_pruner(pruner),
    )
    identity = json.loads(json.dumps(identity))  # as the storage gives it back
    saved = study.user_attrs.get("textgan")
    if saved is None:
        study.set_user_attr("textgan", identity)
    elif saved != identity:
        differ = sorted(k for k in saved.keys() | identity if saved.get(k) != identity.get(k))
        raise UserError(
            f"study {name!r} in this storage was started with other settings "
            f"({', '.join(differ)}); rerun it with the same ones, or choose another "
            "--study-name or --out"
        )
    return study
