"""Helpers for the SDK tests: extra logged-in clients with their own settings."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio

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
