"""Conventions that hold on every route (hcp-api.md section 0): gzip, 500 body, CORS."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from rahcp_prefect.testing import HCPEmulator

from .conftest import login


def test_large_responses_are_gzipped_small_ones_not(api: httpx.Client, hcp_bucket: str) -> None:
    keys = [f"gz/{i}" for i in range(20)]
    big = api.post(f"/buckets/{hcp_bucket}/objects/presign", json={"keys": keys}, headers={"Accept-Encoding": "gzip"})
    assert big.headers["content-encoding"] == "gzip"
    assert [u["key"] for u in big.json()["urls"]] == keys  # httpx decodes transparently
    small = api.get("/capabilities", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers


def test_uncaught_error_is_500_with_request_id(
    hcp_emulator: HCPEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    with HCPEmulator(s3_endpoint=hcp_emulator.s3_endpoint) as emu:
        def broken(**kwargs: Any) -> None:
            raise RuntimeError("boom")

        monkeypatch.setattr(emu.api_s3, "list_buckets", broken)  # the client the routes use
        headers = {"Authorization": f"Bearer {login(emu.base_url)}", "X-Request-ID": "req-500"}
        resp = httpx.get(f"{emu.base_url}/buckets", headers=headers)
        assert resp.status_code == 500
        assert resp.json() == {"detail": "Internal server error", "request_id": "req-500"}
        assert resp.headers["x-request-id"] == "req-500"


def test_cors_allows_any_origin(hcp_emulator: HCPEmulator) -> None:
    resp = httpx.options(
        f"{hcp_emulator.base_url}/buckets",
        headers={"Origin": "http://example.org", "Access-Control-Request-Method": "GET"},
    )
    assert resp.status_code == 200
    assert resp.headers["access-control-allow-origin"] in ("*", "http://example.org")
