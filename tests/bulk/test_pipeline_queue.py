"""The engine's queue: bounded, FIFO, and its bound moves with the pool (a producer waiting
for room is let in when the bound grows, held when it shrinks); a batch goes in as room is
made, and workers waiting on an empty queue are woken one per item."""

from __future__ import annotations

import asyncio

import pytest

from rahcp_prefect.bulk.pipeline import _EMPTY, _Queue


@pytest.mark.timeout(30)
async def test_a_full_queue_holds_its_producer_until_an_item_is_taken() -> None:
    queue = _Queue(2)
    await queue.put_all([1])
    await queue.put_all([2])
    third = asyncio.ensure_future(queue.put_all([3]))
    await asyncio.sleep(0.01)
    assert not third.done()
    assert await queue.get() == 1
    await asyncio.wait_for(third, 1)
    assert [await queue.get(), await queue.get()] == [2, 3]


@pytest.mark.timeout(30)
async def test_a_grown_bound_lets_a_waiting_producer_in_and_a_shrunk_one_holds_it() -> None:
    queue = _Queue(1)
    await queue.put_all(["a"])
    waiting = asyncio.ensure_future(queue.put_all(["b"]))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    queue.resize(4)  # the window grew
    await asyncio.wait_for(waiting, 1)
    queue.resize(1)  # and shrank: two items held, the next put waits for both to go
    held = asyncio.ensure_future(queue.put_all(["c"]))
    assert await queue.get() == "a"
    await asyncio.sleep(0.01)
    assert not held.done()
    assert await queue.get() == "b"
    await asyncio.wait_for(held, 1)
    assert await queue.get() == "c"


@pytest.mark.timeout(30)
async def test_a_batch_larger_than_the_room_goes_in_as_the_workers_make_room() -> None:
    queue = _Queue(4)
    putting = asyncio.ensure_future(queue.put_all(list(range(10))))
    await asyncio.sleep(0.01)
    assert not putting.done() and len(queue._items) == 4  # the bound holds
    got = [await queue.get()]  # 3 left: more than half, the producer still waits
    await asyncio.sleep(0.01)
    assert len(queue._items) == 3
    got.append(await queue.get())  # down to half: room for two more
    await asyncio.sleep(0.01)
    assert len(queue._items) == 4
    while len(got) < 10:
        got.append(await asyncio.wait_for(queue.get(), 1))
        assert len(queue._items) <= 4
    await asyncio.wait_for(putting, 1)
    assert got == list(range(10))


@pytest.mark.timeout(30)
async def test_waiting_workers_are_woken_one_per_item() -> None:
    queue = _Queue(8)
    getters = [asyncio.ensure_future(queue.get()) for _ in range(3)]
    await asyncio.sleep(0.01)
    await queue.put_all(["x"])
    await asyncio.sleep(0.01)
    assert [g.result() for g in getters if g.done()] == ["x"]
    await queue.put_all(["y", "z"])
    assert sorted(await asyncio.wait_for(asyncio.gather(*getters), 1)) == ["x", "y", "z"]
    assert queue.get_nowait() is _EMPTY


@pytest.mark.timeout(30)
async def test_a_worker_cancelled_as_it_is_woken_passes_the_item_on() -> None:
    queue = _Queue(8)
    first = asyncio.ensure_future(queue.get())
    second = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0.01)
    await queue.put_all(["x"])  # wakes the first ...
    first.cancel()  # ... which is cancelled before it runs
    assert await asyncio.wait_for(second, 1) == "x"
    assert first.cancelled()
