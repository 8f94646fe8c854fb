"""Shared fixtures. The genuine One Billion Word shards are required, never skipped."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GBW_DEFAULT = ROOT.parent / "shared" / "corpora" / "gbw-heldout"
GBW_FILES = ("news.en.heldout-00010-of-00050", "news.en.heldout-00011-of-00050")

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _gbw_dir() -> Path:
    return Path(os.environ.get("TEXTGAN_GBW_HELDOUT", GBW_DEFAULT))


def pytest_sessionstart(session):
    missing = [f for f in GBW_FILES if not (_gbw_dir() / f).is_file()]
    if missing:
        raise pytest.UsageError(
            f"the shared One Billion Word shards are missing from {_gbw_dir()} ({missing}); "
            "set TEXTGAN_GBW_HELDOUT to the folder that holds them"
        )


@pytest.fixture(scope="session")
def gbw_dir() -> Path:
    """Folder with the two genuine held-out shards (``$TEXTGAN_GBW_HELDOUT``)."""
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
