"""pytest fixtures for flow tests: one real Prefect API per session and saved blocks.

Registered by ``tests/conftest.py`` so every test folder shares the same Prefect server
(a session fixture defined in two conftests would start two).

* ``prefect_api`` — a temporary Prefect server (SQLite) for the whole session.
* ``saved_blocks`` — credentials for the emulator, fast-test settings and a SQLite tracker,
  saved under unique names (``SavedBlocks.params()`` gives the flow keyword arguments).
* ``make_tree(root, count, size)`` — a helper, not a fixture: a small nested file tree.

Prefect is imported inside the fixtures, so loading the plugin costs nothing for tests that
never ask for them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

MIB = 1024 * 1024


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """One temporary Prefect server (SQLite) for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@dataclass
class SavedBlocks:
    """Names of the blocks ``saved_blocks`` saved, and where the SQLite tracker lives."""

    credentials: str
    settings: str
    tracker: str
    tracker_path: Path

    def params(self) -> dict[str, Any]:
        return {
            "credentials_block": self.credentials,
            "settings_block": self.settings,
            "tracker_block": self.tracker,
        }


@pytest.fixture
async def saved_blocks(prefect_api: None, hcp_credentials: dict[str, Any], tmp_path: Path) -> SavedBlocks:
    """Credentials for the emulator, fast-test settings and a SQLite tracker, saved by name."""
    from rahcp_prefect.blocks import HCPTracker, HCPTransferSettings

    suffix = uuid.uuid4().hex[:10]
    names = SavedBlocks(f"hcp-{suffix}", f"settings-{suffix}", f"tracker-{suffix}", tmp_path / "tracker.db")
    await emulator_credentials(hcp_credentials).save(names.credentials)
    await HCPTransferSettings(
        workers=8, multipart_threshold=8 * MIB, multipart_chunk=5 * MIB, progress_interval=0.05
    ).save(names.settings)
    await HCPTracker(sqlite_path=str(names.tracker_path)).save(names.tracker)
    return names


def emulator_credentials(hcp_credentials: dict[str, Any]) -> Any:
    """An ``HCPCredentials`` block for the emulator (``hcp_credentials``) with fast retries."""
    from pydantic import SecretStr

    from rahcp_prefect.blocks import HCPCredentials

    return HCPCredentials(
        endpoint=hcp_credentials["endpoint"],
        username=hcp_credentials["username"],
        password=SecretStr(hcp_credentials["password"]),
        tenant=hcp_credentials["tenant"],
        retry_base_delay=0.01,
        max_retries=2,
        timeout=10.0,
    )


def make_tree(root: Path, count: int, size: int = 1024) -> dict[str, bytes]:
    """``count`` files in a few nested folders; returns ``{relative path: content}``."""
    files: dict[str, bytes] = {}
    for index in range(count):
        rel = f"dir{index % 3}/sub/file-{index:04d}.bin" if index % 2 else f"top-{index:04d}.txt"
        content = (f"{index}:".encode() * (size // 4 + 1))[: size + index]
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        files[rel] = content
    return files
