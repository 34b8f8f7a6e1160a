"""The control plane against the emulator: login, every path of the retry diagram, error mapping."""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

import httpx
import pytest

from rahcp_prefect.client import (
    AuthenticationError,
    ConflictError,
    HCPClient,
    HCPError,
    NotFoundError,
    RetryableError,
    UpstreamError,
)
from rahcp_prefect.testing.counter import LOGIN

LIST_BUCKETS = ("api", "GET", "/buckets")


async def test_context_manager_logs_in_and_closes(counts: Any, hcp_emulator: Any, hcp_credentials: dict) -> None:
    await counts.reset()
    client = HCPClient(**hcp_credentials)
    assert client.token is None
    async with client:
        assert client.token and client.token.count(".") == 2  # a JWT
        assert (await counts())[LOGIN] == 1
        assert client.s3 is client.s3 and client.mapi is client.mapi and client.data is client.data
    assert client._http.is_closed


async def test_requests_log_in_lazily_without_context_manager(hcp_credentials: dict) -> None:
    client = HCPClient(**hcp_credentials)
    try:
        result = await client.s3.list_buckets()
        assert "buckets" in result and client.token is not None
    finally:
        await client.aclose()


async def test_401_logs_in_again_once_and_retries(counts: Any, hcp_client: HCPClient, hcp_emulator: Any) -> None:
    await counts.reset()
    hcp_emulator.faults.add("api", method="GET", path=r"/buckets$", status=401, count=1)
    result = await hcp_client.s3.list_buckets()
    assert "buckets" in result
    assert (await counts())[LOGIN] == 1
    assert (await counts())[LIST_BUCKETS] == 2
    assert hcp_client.token  # (may equal the old one: same claims within the same second)


async def test_a_real_invalid_token_is_replaced(counts: Any, hcp_client: HCPClient, hcp_emulator: Any) -> None:
    hcp_client._token = "not-a-valid-jwt"
    await counts.reset()
    assert "buckets" in await hcp_client.s3.list_buckets()
    assert (await counts())[LOGIN] == 1
    assert hcp_client.token != "not-a-valid-jwt"


async def test_second_401_raises_authentication_error(counts: Any, hcp_client: HCPClient, hcp_emulator: Any) -> None:
    await counts.reset()
    hcp_emulator.faults.add("api", method="GET", path=r"/buckets$", status=401, count=2)
    with pytest.raises(AuthenticationError) as info:
        await hcp_client.s3.list_buckets()
    assert info.value.status_code == 401
    assert info.value.message == "injected fault"
    assert (await counts())[LOGIN] == 1
    assert (await counts())[LIST_BUCKETS] == 2


async def test_403_raises_authentication_error_without_retry(counts: Any, hcp_client: HCPClient, hcp_emulator: Any) -> None:
    await counts.reset()
    hcp_emulator.faults.add("api", path=r"/buckets$", status=403, count=None)
    with pytest.raises(AuthenticationError) as info:
        await hcp_client.s3.list_buckets()
    assert info.value.status_code == 403
    assert (await counts())[LIST_BUCKETS] == 1
    assert (await counts())[LOGIN] == 0


@pytest.mark.parametrize("status", [408, 429, 500, 503, 504])
async def test_retryable_status_is_retried_then_succeeds(counts: Any, 
    hcp_client: HCPClient, hcp_emulator: Any, status: int
) -> None:
    await counts.reset()
    hcp_emulator.faults.add("api", path=r"/buckets$", status=status, count=2)
    assert "buckets" in await hcp_client.s3.list_buckets()
    assert (await counts())[LIST_BUCKETS] == 3


async def test_backoff_then_retryable_error_after_max_retries(counts: Any, make_client: Any, hcp_emulator: Any) -> None:
    client = await make_client(max_retries=2, retry_base_delay=0.2, retry_deadline=0)  # no time budget
    await counts.reset()
    hcp_emulator.faults.add("api", path=r"/buckets$", status=503, count=None)
    started = time.monotonic()
    with pytest.raises(RetryableError) as info:
        await client.s3.list_buckets()
    elapsed = time.monotonic() - started
    assert type(info.value) is RetryableError and info.value.status_code == 503
    assert (await counts())[LIST_BUCKETS] == 3  # 1 + max_retries
    # waits of base*2**0 and base*2**1, each at least half of it with jitter: >= 0.1 + 0.2
    assert elapsed >= 0.3


async def test_zero_retries_means_one_attempt(counts: Any, make_client: Any, hcp_emulator: Any) -> None:
    client = await make_client(max_retries=0)
    await counts.reset()
    hcp_emulator.faults.add("api", path=r"/buckets$", status=500, count=None)
    with pytest.raises(RetryableError):
        await client.s3.list_buckets()
    assert (await counts())[LIST_BUCKETS] == 1


async def test_502_raises_upstream_error_without_retry(counts: Any, hcp_client: HCPClient, hcp_emulator: Any) -> None:
    await counts.reset()
    hcp_emulator.faults.add("api", path=r"/buckets$", status=502, count=None)
    with pytest.raises(UpstreamError) as info:
        await hcp_client.s3.list_buckets()
    assert info.value.status_code == 502
    assert (await counts())[LIST_BUCKETS] == 1


async def test_404_raises_not_found(hcp_client: HCPClient, hcp_bucket: str) -> None:
    with pytest.raises(NotFoundError) as info:
        await hcp_client.s3.head(hcp_bucket, "missing.txt")
    assert info.value.status_code == 404 and info.value.message == "Not Found"  # HEAD: empty body
    with pytest.raises(NotFoundError) as info:
        await hcp_client.s3.list_objects("no-such-bucket-here")
    assert "does not exist" in info.value.message and len(info.value.message) <= 200


async def test_409_raises_conflict(hcp_client: HCPClient) -> None:
    await hcp_client.mapi.create_namespace("dev-ai", {"name": "conflict-ns"})
    try:
        with pytest.raises(ConflictError) as info:
            await hcp_client.mapi.create_namespace("dev-ai", {"name": "conflict-ns"})
        assert info.value.status_code == 409
    finally:
        await hcp_client.mapi.delete_namespace("dev-ai", "conflict-ns")


async def test_other_4xx_raises_plain_hcp_error(hcp_client: HCPClient, hcp_bucket: str) -> None:
    with pytest.raises(HCPError) as info:
        await hcp_client.s3.presign_get(hcp_bucket, "k", expires=0)  # 422 validation error
    assert type(info.value) is HCPError and info.value.status_code == 422
    assert "expires_in" in info.value.message and len(info.value.message) <= 200


async def test_dropped_connection_is_retried(counts: Any, hcp_client: HCPClient, hcp_emulator: Any) -> None:
    await counts.reset()
    rule = hcp_emulator.faults.add("api", path=r"/buckets$", drop=True, count=1)
    assert "buckets" in await hcp_client.s3.list_buckets()
    assert rule.hits == 1
    assert (await counts())[LIST_BUCKETS] == 2


async def test_dropped_every_time_raises_retryable_error(counts: Any, hcp_client: HCPClient, hcp_emulator: Any) -> None:
    await counts.reset()
    hcp_emulator.faults.add("api", path=r"/buckets$", drop=True, count=None)
    with pytest.raises(RetryableError) as info:
        await hcp_client.s3.list_buckets()
    assert info.value.status_code == 0
    assert "/buckets" in info.value.message
    assert (await counts())[LIST_BUCKETS] == 4  # 1 + max_retries (3)


async def test_read_timeout_is_retried(make_client: Any, hcp_emulator: Any, caplog: Any) -> None:
    client = await make_client(timeout=0.3)
    rule = hcp_emulator.faults.add("api", path=r"/buckets$", delay=1.0, count=1)
    with caplog.at_level(logging.WARNING, logger="rahcp_prefect"):
        assert "buckets" in await client.s3.list_buckets()
    assert rule.hits == 1
    assert any("ReadTimeout" in r.getMessage() and "retry 1/3" in r.getMessage() for r in caplog.records)


async def test_login_with_empty_password_fails_with_status(hcp_credentials: dict) -> None:
    with pytest.raises(AuthenticationError) as info:
        async with HCPClient(**{**hcp_credentials, "password": ""}):
            pass
    assert info.value.status_code == 422
    assert info.value.message == "Login failed: 422"


async def test_login_with_wrong_password_fails(hcp_emulator: Any) -> None:
    from rahcp_prefect.testing.emulator import HCPEmulator

    with HCPEmulator(s3_endpoint=hcp_emulator.s3_endpoint, users={"alice": "right-pass"}) as strict:
        async with HCPClient(endpoint=strict.base_url, username="alice", password="right-pass") as ok:
            assert ok.token
        with pytest.raises(AuthenticationError) as info:
            async with HCPClient(endpoint=strict.base_url, username="alice", password="wrong-pass"):
                pass
    assert info.value.message == "Login failed: 401" and info.value.status_code == 401
    assert "wrong-pass" not in str(info.value)


async def test_login_transient_failure_is_retried(counts: Any, hcp_credentials: dict, hcp_emulator: Any) -> None:
    await counts.reset()
    hcp_emulator.faults.add("api", path=r"/auth/token$", status=503, count=1)
    async with HCPClient(**hcp_credentials, retry_base_delay=0.01) as client:
        assert client.token
    assert (await counts())[LOGIN] == 2


async def test_login_unreachable_raises_authentication_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = HCPClient(endpoint=f"http://127.0.0.1:{port}/api/v1", username="u", password="p",
                       max_retries=1, retry_base_delay=0.01)
    with pytest.raises(AuthenticationError, match="Login failed: ConnectError"):
        await client.__aenter__()
    assert client._http.is_closed


async def test_retry_after_header_is_honoured() -> None:
    """The emulator's faults send no Retry-After, so this one case uses a mock transport."""
    calls: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/auth/token"):
            return httpx.Response(200, json={"access_token": "tok-123456", "token_type": "bearer"})
        calls.append(time.monotonic())
        if len(calls) == 1:
            return httpx.Response(429, headers={"Retry-After": "0.4"}, json={"detail": "slow down"})
        return httpx.Response(200, json={"buckets": []})

    async with HCPClient(username="u", password="p", retry_base_delay=0.0,
                         transport=httpx.MockTransport(handler)) as client:
        assert await client.s3.list_buckets() == {"buckets": []}
    assert len(calls) == 2 and calls[1] - calls[0] >= 0.39


async def test_error_messages_are_redacted_and_cut() -> None:
    """An error body echoing secrets (the emulator never does) is redacted; mock transport."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/auth/token"):
            return httpx.Response(200, json={"access_token": "eyJhbGciOi.eyJzdWIiOiJ1In0.c2lnbmF0dXJl"})
        detail = (
            "bad request from user with password=pass-word-123 and token eyJhbGciOi.eyJzdWIiOiJ1In0.c2lnbmF0dXJl "
            "url http://s3/b/k?X-Amz-Signature=feedface " + "x" * 300
        )
        return httpx.Response(400, json={"detail": detail})

    async with HCPClient(username="u", password="pass-word-123",
                         transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(HCPError) as info:
            await client.s3.list_buckets()
    text = str(info.value)
    assert info.value.status_code == 400 and len(info.value.message) == 200
    for secret in ("pass-word-123", "eyJhbGciOi", "feedface"):
        assert secret not in text


@pytest.mark.timeout(60)
async def test_throttling_is_retried_for_the_deadline_not_max_retries(
    counts: Any, make_client: Any, hcp_emulator: Any
) -> None:
    """503 (throttling) is retried past ``max_retries`` for up to ``retry_deadline`` seconds;
    a throttle that ends within it costs no error, one that does not ends at the deadline."""
    client = await make_client(max_retries=1, retry_base_delay=0.05, retry_deadline=1.5)
    await counts.reset()
    hcp_emulator.faults.add("api", path=r"/buckets$", status=503, count=5)
    await client.s3.list_buckets()
    assert (await counts())[LIST_BUCKETS] == 6  # 5 throttled + 1, with max_retries=1
    assert client.api_throttled == 5

    await counts.reset()
    hcp_emulator.faults.add("api", path=r"/buckets$", status=429, count=None)
    started = time.monotonic()
    with pytest.raises(RetryableError):
        await client.s3.list_buckets()
    elapsed = time.monotonic() - started
    # It stops once the next wait would pass the deadline: the five waits that fit are at least
    # half of 0.05 + 0.1 + 0.2 + 0.4 + 0.8 s (jitter), and a sixth (0.8 to 1.6 s) may not fit.
    assert 0.75 <= elapsed <= 4.0, elapsed
    assert (await counts())[LIST_BUCKETS] > 3
