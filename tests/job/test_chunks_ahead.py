"""``job.run._chunks_ahead``: a single run's batches, the next one gathered while one is sent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from rahcp_prefect.job.run import _chunks_ahead


class Source:
    """Items 0..n-1, one event-loop turn each (a listing), noting what was read and whether it
    was closed; ``fail_at`` raises there (a listing error)."""

    def __init__(self, n: int, fail_at: int | None = None) -> None:
        self.n = n
        self.fail_at = fail_at
        self.read = 0
        self.closed = False

    async def items(self) -> AsyncIterator[int]:
        try:
            for i in range(self.n):
                await asyncio.sleep(0)
                if i == self.fail_at:
                    raise OSError("the listing failed")
                self.read = i + 1
                yield i
        finally:
            self.closed = True


async def test_the_next_chunk_is_read_while_one_is_being_sent() -> None:
    source = Source(25)
    seen: list[list[int]] = []
    read_when_sent: list[int] = []
    async for chunk in _chunks_ahead(source.items(), 10):
        await asyncio.sleep(0.01)  # the batch's transfers
        read_when_sent.append(source.read)
        seen.append(chunk)
    assert seen == [list(range(10)), list(range(10, 20)), list(range(20, 25))]
    # while batch 1 was sent, batch 2 was read; never more than one chunk ahead
    assert read_when_sent == [20, 25, 25]
    assert source.closed


async def test_an_error_of_the_source_comes_where_its_chunk_would_have() -> None:
    source = Source(25, fail_at=15)
    seen: list[list[int]] = []
    with pytest.raises(OSError, match="the listing failed"):
        async for chunk in _chunks_ahead(source.items(), 10):
            seen.append(chunk)
    assert seen == [list(range(10))]  # the chunk before it was sent first
    assert source.closed


async def test_a_caller_that_stops_cancels_the_read_ahead_and_closes_the_source() -> None:
    source = Source(10_000)
    chunks = _chunks_ahead(source.items(), 10)
    async for _chunk in chunks:
        break  # a stop request before the next batch
    await chunks.aclose()
    assert source.closed and source.read < 10_000
    read = source.read
    await asyncio.sleep(0.01)
    assert source.read == read, "nothing read after the caller stopped"
