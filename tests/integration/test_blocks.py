"""Blocks: Prefect's standard suite, secrets kept secret, clear errors, real round trips."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
from prefect.blocks.core import Block
from prefect.testing.standard_test_suites import BlockStandardTestSuite
from pydantic import SecretStr, ValidationError

import rahcp_prefect
from rahcp_prefect.blocks import LOGO_FILE, LOGO_URL, HCPBucket, HCPCredentials, HCPTracker, HCPTransferSettings
from rahcp_prefect.tracker import TrackerConnectionError


class _OfflineSuite(BlockStandardTestSuite):
    def test_has_a_valid_image(self, block: type[Block]) -> None:
        """Prefect's own check fetches the logo over the network (this machine is offline): the
        same checks on the packaged file the URL serves, a square PNG of 46 to 999 px."""
        assert block._logo_url is not None and str(block._logo_url) == LOGO_URL
        assert LOGO_URL.endswith("/rahcp_prefect/" + LOGO_FILE)
        data = (Path(rahcp_prefect.__file__).parent / LOGO_FILE).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
        width, height = struct.unpack(">II", data[16:24])
        assert width == height and 1000 > width > 45


class TestHCPCredentialsStandard(_OfflineSuite):
    @pytest.fixture
    def block(self) -> type[Block]:
        return HCPCredentials


class TestHCPTransferSettingsStandard(_OfflineSuite):
    @pytest.fixture
    def block(self) -> type[Block]:
        return HCPTransferSettings


class TestHCPTrackerStandard(_OfflineSuite):
    @pytest.fixture
    def block(self) -> type[Block]:
        return HCPTracker


class TestHCPBucketStandard(_OfflineSuite):
    @pytest.fixture
    def block(self) -> type[Block]:
        return HCPBucket


async def test_credentials_block_round_trip_and_client(
    prefect_api: None, hcp_credentials: dict[str, Any], hcp_bucket: str
) -> None:
    await HCPCredentials(
        endpoint=hcp_credentials["endpoint"],
        username=hcp_credentials["username"],
        password=SecretStr(hcp_credentials["password"]),
        tenant=hcp_credentials["tenant"],
    ).save("creds-round-trip", overwrite=True)
    loaded = await HCPCredentials.aload("creds-round-trip")
    assert hcp_credentials["password"] not in repr(loaded)
    assert loaded.password.get_secret_value() == hcp_credentials["password"]
    async with loaded.get_client(HCPTransferSettings(multipart_chunk=6 * 1024 * 1024)) as client:
        assert client.transfer_settings.multipart_chunk == 6 * 1024 * 1024
        names = [bucket["Name"] for bucket in (await client.s3.list_buckets())["buckets"]]
    assert hcp_bucket in names


def test_settings_overrides_are_validated() -> None:
    settings = HCPTransferSettings()
    assert settings.with_overrides({"workers": 32}).workers == 32
    assert settings.with_overrides(None) is settings
    with pytest.raises(ValueError, match="unknown transfer setting.*wokers"):
        settings.with_overrides({"wokers": 32})
    with pytest.raises(ValueError, match="settings_overrides: workers = 0"):
        settings.with_overrides({"workers": 0})
    assert settings.commit_concurrency == 8
    assert settings.with_overrides({"commit_concurrency": 64}).commit_concurrency == 64
    with pytest.raises(ValueError, match="settings_overrides: commit_concurrency = 0"):
        settings.with_overrides({"commit_concurrency": 0})
    with pytest.raises(ValueError, match="direction"):
        settings.engine_options("sideways")


def test_tracker_block_targets(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="either sqlite_path or postgres_dsn"):
        HCPTracker(sqlite_path=str(tmp_path / "t.db"), postgres_dsn=SecretStr("postgresql://x@y/z"))
    block = HCPTracker(sqlite_path=str(tmp_path / "deep" / "t.db"))
    tracker = block.get_tracker("job-a")
    try:
        assert tracker.summary() == {"pending": 0, "done": 0, "error": 0}
    finally:
        tracker.close()
    assert (tmp_path / "deep" / "t.db").exists()
    assert not block.is_shared


def test_tracker_block_bad_dsn_fails_clearly_without_password() -> None:
    block = HCPTracker(postgres_dsn=SecretStr("postgresql://rahcp:Sup3rS3cret@127.0.0.1:1/nowhere"))
    assert "Sup3rS3cret" not in repr(block)
    with pytest.raises(TrackerConnectionError) as caught:
        block.get_tracker("job-b")
    assert "Sup3rS3cret" not in str(caught.value)
    assert "127.0.0.1" in str(caught.value)
