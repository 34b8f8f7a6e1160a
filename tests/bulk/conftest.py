"""Helpers for the engine's tests: a SQLite tracker per test and small file trees."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from rahcp_prefect.tracker import SqliteTracker


@pytest.fixture
def tracker(tmp_path: Path) -> Iterator[SqliteTracker]:
    t = SqliteTracker(tmp_path / "tracker.db", job="test", flush_every=50)
    yield t
    t.close()


def make_tree(root: Path, files: dict[str, bytes]) -> dict[str, bytes]:
    """Write ``{relative/path: content}`` under ``root``; returns ``files``."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return files


def content(i: int, size: int = 100) -> bytes:
    """Deterministic, distinct bytes for file number ``i``."""
    seed = f"{i:08d}".encode()
    return (seed * (size // len(seed) + 1))[:size]


def local_files(root: Path) -> dict[str, bytes]:
    """``{relative/path: content}`` of every file under ``root`` (``/`` separators)."""
    out: dict[str, bytes] = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            out[path.relative_to(root).as_posix()] = path.read_bytes()
    return out
