"""Helpers for the emulator contract tests: plain httpx clients (never our SDK)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest

from rahcp_prefect.testing import HCPEmulator

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
QUOTED_ETAG = re.compile(r'^"[0-9a-f]{32}(-\d+)?"$')


def login(base_url: str, username: str = "tester", password: str = "pw", **extra: str) -> str:
    resp = httpx.post(f"{base_url}/auth/token", data={"username": username, "password": password, **extra})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["access_token"])


@pytest.fixture
def api(hcp_emulator: HCPEmulator) -> Iterator[httpx.Client]:
    """An authenticated httpx client on the emulator's base URL."""
    token = login(hcp_emulator.base_url, tenant="dev-ai")
    with httpx.Client(
        base_url=hcp_emulator.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        yield client
    hcp_emulator.reset_counts()


def path_key(key: str) -> str:
    """How a correct client puts a key into an API path."""
    return quote(key, safe="/")


def put_object(api: httpx.Client, bucket: str, key: str, data: bytes, content_type: str | None = None) -> httpx.Response:
    """Upload through a presigned PUT straight to S3."""
    url = api.post("/presign", json={"bucket": bucket, "key": key, "method": "put_object"}).json()["url"]
    headers = {"Content-Type": content_type} if content_type else {}
    resp = httpx.put(url, content=data, headers=headers)
    assert resp.status_code == 200, resp.text
    return resp
