"""Shared fixtures.

Tests that need news text use two genuine One Billion Word held-out shards from
``../shared/corpora/gbw-heldout`` (or ``$TEXTGAN_GBW_HELDOUT``); the repository never carries a
copy. Where they are missing (a fresh clone) those tests skip with the reason; with
``TEXTGAN_REQUIRE_GBW=1`` (set by ``.ci/run``) their absence stops the run instead.

Without textgan installed in the running Python (a bare clone: no torch, no ``textgan`` for the
CLI's subprocesses) every test skips, saying how to install; with ``TEXTGAN_REQUIRE_DEPS=1``
(set by ``.ci/run``, where a broken install must not pass as skips) the run stops instead.
"""

import importlib.metadata
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GBW_DEFAULT = ROOT.parent / "shared" / "corpora" / "gbw-heldout"
GBW_FILES = ("news.en.heldout-00010-of-00050", "news.en.heldout-00011-of-00050")
REQUIRE_GBW = "TEXTGAN_REQUIRE_GBW"
REQUIRE_DEPS = "TEXTGAN_REQUIRE_DEPS"
NOT_INSTALLED = (
    f"textgan is not installed in this Python ({sys.executable}); install it and its test "
    'dependencies: python -m pip install torch==2.13.0 -e ".[dev]"'
)

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _gbw_dir() -> Path:
    return Path(os.environ.get("TEXTGAN_GBW_HELDOUT", GBW_DEFAULT))


def _missing() -> list[str]:
    return [f for f in GBW_FILES if not (_gbw_dir() / f).is_file()]


def _installed() -> bool:
    try:
        importlib.metadata.distribution("textgan")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


INSTALLED = _installed()


def pytest_sessionstart(session):
    if os.environ.get(REQUIRE_DEPS) == "1" and not INSTALLED:
        raise pytest.UsageError(f"{REQUIRE_DEPS}=1 but {NOT_INSTALLED}")
    if os.environ.get(REQUIRE_GBW) == "1" and _missing():
        raise pytest.UsageError(
            f"{REQUIRE_GBW}=1 but the shared One Billion Word shards are missing from "
            f"{_gbw_dir()} ({_missing()}); set TEXTGAN_GBW_HELDOUT to the folder that holds them"
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """Not installed, a test module that cannot even be imported skips with the reason."""
    report = (yield).get_result()
    if report.failed and not INSTALLED:
        report.outcome = "skipped"
        report.longrepr = (str(collector.path), 0, NOT_INSTALLED)


def pytest_collection_modifyitems(items):
    if not INSTALLED:
        for item in items:
            item.add_marker(pytest.mark.skip(reason=NOT_INSTALLED))


@pytest.fixture(scope="session")
def gbw_dir() -> Path:
    """Folder with the two genuine held-out shards (``$TEXTGAN_GBW_HELDOUT``)."""
    if _missing():
        pytest.skip(
            f"needs the shared One Billion Word shards, not found at {_gbw_dir()} "
            "(a fresh clone has none; set TEXTGAN_GBW_HELDOUT)"
        )
    return _gbw_dir()


@pytest.fixture(scope="session")
def gbw_files(gbw_dir) -> list[Path]:
    return [gbw_dir / f for f in GBW_FILES]


@pytest.fixture(scope="session")
def gbw_lines(gbw_files) -> list[str]:
    """All 12,216 lines of the two shards, newline dropped."""
    lines = []
    for path in gbw_files:
        lines.extend(path.read_text(encoding="utf-8").splitlines())
    return lines


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for modules of tiny steps (the cores are shared)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
