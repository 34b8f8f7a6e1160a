"""Helpers for the SDK tests: extra logged-in clients with their own settings."""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from rahcp_prefect.client import HCPClient

MIB = 1024 * 1024

ClientFactory = Callable[..., Awaitable[HCPClient]]


@pytest_asyncio.fixture
async def make_client(hcp_credentials: dict[str, Any]) -> AsyncIterator[ClientFactory]:
    """``await make_client(**overrides)``: a logged-in client, closed after the test."""
    clients: list[HCPClient] = []

    async def make(**overrides: Any) -> HCPClient:
        settings: dict[str, Any] = {"retry_base_delay": 0.01, "max_retries": 3, "timeout": 10.0}
        settings.update(overrides)
        client = HCPClient(**{**hcp_credentials, **settings})
        await client.__aenter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()




class Counts:
    """``await counts()``: the emulator's request counts once they stopped changing;
    ``await counts.reset()``: settle, then zero them.

    The emulator counts a normal request just after answering it, so a read straight after a
    response can miss the last one; this waits until two reads 30 ms apart agree (max 2 s).
    """

    def __init__(self, emulator: Any) -> None:
        self.emulator = emulator

    async def __call__(self) -> Counter:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2.0
        previous = self.emulator.request_counts
        while True:
            await asyncio.sleep(0.03)
            current = self.emulator.request_counts
            if current == previous or loop.time() > deadline:
                return current
            previous = current

    async def reset(self) -> None:
        await self()
        self.emulator.reset_counts()


@pytest.fixture
def counts(hcp_emulator: Any) -> Counts:
    return Counts(hcp_emulator)


@pytest_asyncio.fixture
async def recorder() -> AsyncIterator[tuple[str, list[dict[str, Any]], dict[str, Any]]]:
    """A local aiohttp server standing in for S3: records each request's raw path, headers and
    body, and answers with the body's MD5 as ETag (``mode["etag"]`` overrides it)."""
    seen: list[dict[str, Any]] = []
    mode: dict[str, Any] = {"etag": None}

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append({"raw_path": request.raw_path, "headers": dict(request.headers), "size": len(body), "body": body})
        etag = mode["etag"] or hashlib.md5(body).hexdigest()
        return web.Response(headers={"ETag": f'"{etag}"'})

    app = web.Application(client_max_size=64 * MIB)
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", seen, mode
    await runner.cleanup()
