"""The pipelines of the top-level ``flows/`` folder, loaded from their files as a user runs them,
with the blocks they name by default (``hcp``, ``hcp-settings``, ``hcp-tracker``) saved on the
session's Prefect API for the emulator."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from rahcp_prefect.testing.prefect_fixtures import MIB, emulator_credentials

FLOWS = Path(__file__).resolve().parents[2] / "flows"


def load_flows_file(name: str) -> ModuleType:
    """``flows/<name>.py`` as a module (not as ``__main__``: its script part does not run)."""
    spec = importlib.util.spec_from_file_location(f"user_flows_{name}", FLOWS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
async def default_blocks(prefect_api: None, hcp_credentials: dict[str, Any], tmp_path: Path) -> Path:
    """The blocks ``rahcp-prefect setup`` saves, by their default names; returns the tracker file."""
    from rahcp_prefect.blocks import HCPTracker, HCPTransferSettings

    tracker = tmp_path / "tracker.db"
    await emulator_credentials(hcp_credentials).save("hcp", overwrite=True)
    await HCPTransferSettings(workers=8, multipart_threshold=8 * MIB, multipart_chunk=5 * MIB).save(
        "hcp-settings", overwrite=True
    )
    await HCPTracker(sqlite_path=str(tracker)).save("hcp-tracker", overwrite=True)
    return tracker
