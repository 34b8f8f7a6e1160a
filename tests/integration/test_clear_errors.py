"""Errors a new user meets first say what to do: a missing block names the block and how to create
it, the emulator without its extra names the extra, and the CLI's help is written for users."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rahcp_prefect.block_loading import BlockNotFoundError
from rahcp_prefect.flows import bulk_download, bulk_upload

from .conftest import SavedBlocks

BIN = Path(sys.executable).parent


async def test_a_missing_credentials_block_names_it_and_the_ways_to_create_it(
    prefect_api: None, hcp_bucket: str, tmp_path: Path
) -> None:
    (tmp_path / "a.txt").write_text("a")
    with pytest.raises(BlockNotFoundError) as info:
        await bulk_upload(source_dir=str(tmp_path), bucket=hcp_bucket, credentials_block="no-such-hcp")
    message = str(info.value)
    assert message.startswith("no HCP Credentials block named 'no-such-hcp' on http://")
    assert "create it with `rahcp-prefect setup`" in message
    assert "from rahcp_prefect.blocks import HCPCredentials; HCPCredentials(" in message
    assert ".save('no-such-hcp')" in message


async def test_a_missing_tracker_block_is_named_too(
    saved_blocks: SavedBlocks, hcp_bucket: str, tmp_path: Path
) -> None:
    with pytest.raises(BlockNotFoundError, match="no HCP Tracker block named 'gone-tracker' on .*HCPTracker\\("):
        await bulk_download(
            bucket=hcp_bucket, dest_dir=str(tmp_path / "dest"), credentials_block=saved_blocks.credentials,
            settings_block=saved_blocks.settings, tracker_block="gone-tracker",
        )


def test_the_emulator_without_its_extra_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real case (a venv without the extra) is in tests/packaging/test_wheel.py."""
    import rahcp_prefect.testing as testing

    monkeypatch.setattr(testing, "EMULATOR_MODULES", ("fastapi", "rahcp_no_such_module"))
    with pytest.raises(testing.EmulatorExtraMissing) as info:
        testing.HCPEmulator  # noqa: B018 - the lazy attribute is what a user imports
    assert str(info.value) == (
        "the HCP emulator needs the 'emulator' extra: pip install 'rahcp-prefect[emulator]' "
        "(missing: rahcp_no_such_module)"
    )
    assert isinstance(info.value, ModuleNotFoundError)


def test_top_level_help_is_for_users() -> None:
    result = subprocess.run([str(BIN / "rahcp-prefect"), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    text = result.stdout
    assert "Move files to and from Hitachi Content Platform (HCP) with Prefect." in text
    for command in ("setup", "emulator", "errors", "prefect-file"):
        assert command in text
    assert "prefect worker start --pool rahcp-process" in text
    assert "subparsers" not in text and "func" not in text and "Add a subcommand" not in text


def test_prefect_file_prints_the_packaged_deployments(tmp_path: Path) -> None:
    result = subprocess.run([str(BIN / "rahcp-prefect"), "prefect-file"], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path)
    path = Path(result.stdout.strip())
    assert result.returncode == 0 and path.is_file() and path.name == "prefect.yaml"
    assert "entrypoint: rahcp_prefect.flows.upload:bulk_upload" in path.read_text()
    # from a checkout (editable install): the checkout's one deployment file, not a copy
    assert path == Path(__file__).resolve().parents[2] / "deployments" / "prefect.yaml"
