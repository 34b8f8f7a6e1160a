"""The pytest fixtures other test suites build on."""

from __future__ import annotations

from typing import Any

import httpx

from rahcp_prefect.testing import HCPEmulator


def _assert_clean_then_dirty(emulator: HCPEmulator) -> None:
    # Whichever of the two tests runs second proves the fixture cleaned up after the first.
    assert emulator.faults.rules == []
    assert not [k for k in emulator.request_counts if k[0] == "api"]
    emulator.faults.add("api", path="^/never-requested$", status=500, count=None)
    httpx.get(f"{emulator.root_url}/liveness")


def test_hcp_emulator_is_reset_between_tests_a(hcp_emulator: HCPEmulator) -> None:
    _assert_clean_then_dirty(hcp_emulator)


def test_hcp_emulator_is_reset_between_tests_b(hcp_emulator: HCPEmulator) -> None:
    _assert_clean_then_dirty(hcp_emulator)


def test_session_emulator_is_shared(hcp_emulator: HCPEmulator, hcp_emulator_session: HCPEmulator) -> None:
    assert hcp_emulator is hcp_emulator_session
    assert hcp_emulator.base_url.startswith("http://127.0.0.1:")
    assert hcp_emulator.base_url.endswith("/api/v1")
    assert hcp_emulator.base_url == hcp_emulator.root_url + "/api/v1"


def test_hcp_bucket_and_credentials(hcp_emulator: HCPEmulator, hcp_bucket: str, hcp_credentials: dict[str, Any]) -> None:
    assert hcp_credentials == {
        "endpoint": hcp_emulator.base_url,
        "username": "tester",
        "password": "s3cr3t-Pa55word!",
        "tenant": "dev-ai",
    }
    assert hcp_bucket in [b["Name"] for b in hcp_emulator.s3.list_buckets()["Buckets"]]
    assert hcp_emulator.s3.list_objects_v2(Bucket=hcp_bucket)["KeyCount"] == 0


def test_hcp_bucket_names_are_unique(hcp_bucket: str, hcp_emulator: HCPEmulator) -> None:
    other = hcp_emulator.create_bucket(hcp_bucket + "-2")
    assert other != hcp_bucket
    hcp_emulator.s3.delete_bucket(Bucket=other)


async def test_hcp_client_is_logged_in(hcp_client: Any, hcp_bucket: str) -> None:
    listing = await hcp_client.s3.list_buckets()
    assert hcp_bucket in [b["Name"] for b in listing["buckets"]]
