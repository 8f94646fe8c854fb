"""The ``.npz`` caches kept beside a prepared corpus (n-gram reference, language model).

A cache is written atomically (``textgan.files.atomic_open``) and read without unpickling. It
is only a copy of something recomputable, so anything wrong with it (empty, truncated, an old
format, arrays of the wrong type, shape or size, crafted or not) raises one of
``UNREADABLE_CACHE`` and the caller rebuilds it; a cache never crashes scoring.
"""

from __future__ import annotations

import json
import math
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from textgan import files
from textgan.errors import UserError

# What loading a damaged or outdated cache raises (an empty file: EOFError; a truncated one:
# BadZipFile; a missing array or field: KeyError; anything the checks below refuse: ValueError).
UNREADABLE_CACHE = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile)


def save_npz(path: str | Path, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Write ``meta`` (as JSON, the array ``meta``) and ``arrays`` to ``path`` as ``.npz``,
    atomically: a full disk or a killed process leaves no half-written cache behind."""
    with files.atomic_open(path, "wb") as f:
        np.savez(f, meta=np.array(json.dumps(meta)), **arrays)


def save_cache(save: Callable[[], None], path: Path) -> None:
    """Run ``save``; a cache that cannot be written (read-only corpus folder) is a warning."""
    try:
        save()
    except OSError as err:
        warnings.warn(f"could not cache {path}: {err.strerror or err}", stacklevel=3)
    except UserError as err:  # atomic_open's one-line form of an OSError, naming the file
        warnings.warn(f"{err}; going on without caching it", stacklevel=3)


def load_npz(path: str | Path, version: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The ``meta`` object and the other arrays of a ``save_npz`` file of format ``version``.

    The array headers are checked before any array is read, so a crafted header that declares
    terabytes is refused instead of allocated; object arrays are never unpickled."""
    _check_headers(path)
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    meta_array = arrays.pop("meta")
    if meta_array.shape != () or meta_array.dtype.kind != "U":
        raise ValueError("the cache's meta is not one string")
    meta = json.loads(str(meta_array))
    if not isinstance(meta, dict) or meta.get("format") != version:
        raise ValueError(f"unsupported cache format in {path}")
    return meta, arrays


def _check_headers(path: str | Path) -> None:
    """Refuse object arrays and arrays whose declared size exceeds the whole file."""
    size = Path(path).stat().st_size
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(member)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(member)
                else:  # np.savez writes 1.0 (2.0 for huge headers); nothing else is ours
                    raise ValueError(f"{info.filename}: .npy format {version}")
            if dtype.hasobject or math.prod(shape) * dtype.itemsize > size:
                raise ValueError(f"{info.filename}: object array or larger than its file")


def meta_int(meta: dict[str, Any], name: str) -> int:
    """``meta[name]``, which must be a positive integer."""
    value = meta[name]
    if type(value) is not int or value < 1:
        raise ValueError(f"cache field {name!r} is {value!r}, not a positive integer")
    return value


def check_counts(keys: np.ndarray, counts: np.ndarray, limit: int) -> None:
    """Raise ValueError unless ``keys`` are strictly increasing uint64 below ``limit`` and
    ``counts`` positive int64 of the same length: what ``NgramCounts`` assumes."""
    if keys.dtype != np.uint64 or counts.dtype != np.int64:
        raise ValueError(f"n-gram arrays of dtypes {keys.dtype}, {counts.dtype}")
    if keys.ndim != 1 or keys.shape != counts.shape:
        raise ValueError(f"n-gram arrays of shapes {keys.shape}, {counts.shape}")
    if len(keys) and (
        bool(np.any(keys[1:] <= keys[:-1])) or int(keys[-1]) >= limit or int(counts.min()) < 1
    ):
        raise ValueError("n-gram keys out of order or range, or counts below 1")
