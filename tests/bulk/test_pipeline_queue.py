"""The engine's queue: bounded, FIFO, and its bound moves with the pool (a producer waiting
for room is let in when the bound grows, held when it shrinks)."""

from __future__ import annotations

import asyncio

import pytest

from rahcp_prefect.bulk.pipeline import _Queue


@pytest.mark.timeout(30)
async def test_a_full_queue_holds_its_producer_until_an_item_is_taken() -> None:
    queue = _Queue(2)
    await queue.put(1)
    await queue.put(2)
    third = asyncio.ensure_future(queue.put(3))
    await asyncio.sleep(0.01)
    assert not third.done()
    assert await queue.get() == 1
    await asyncio.wait_for(third, 1)
    assert [await queue.get(), await queue.get()] == [2, 3]


@pytest.mark.timeout(30)
async def test_a_grown_bound_lets_a_waiting_producer_in_and_a_shrunk_one_holds_it() -> None:
    queue = _Queue(1)
    await queue.put("a")
    waiting = asyncio.ensure_future(queue.put("b"))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    queue.resize(4)  # the window grew
    await asyncio.wait_for(waiting, 1)
    queue.resize(1)  # and shrank: two items held, the next put waits for both to go
    held = asyncio.ensure_future(queue.put("c"))
    assert await queue.get() == "a"
    await asyncio.sleep(0.01)
    assert not held.done()
    assert await queue.get() == "b"
    await asyncio.wait_for(held, 1)
    assert await queue.get() == "c"
