"""The presigner on its own (a fake API): full batches from a fast source, signed keys handed out
while a slow source waits, a failing source, and an early stop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from rahcp_prefect.bulk.presigner import FIRST_BATCH, Presigner


class FakeS3:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    async def presign_bulk(self, bucket: str, keys: list[str], method: str = "", expires: int = 0) -> dict[str, str]:
        self.calls.append(list(keys))
        await asyncio.sleep(0)
        return {key: f"url:{key}" for key in keys}


def presigner(s3: FakeS3, size: int) -> Presigner[tuple[str]]:
    return Presigner(s3, "bkt", method="get_object", batch_size=size)


async def source(keys: list[str]) -> AsyncIterator[tuple[str]]:
    for key in keys:
        yield (key,)


async def test_a_fast_source_is_signed_in_full_batches() -> None:
    s3 = FakeS3()
    keys = [f"k{i}" for i in range(10)]
    batches = [batch async for batch in presigner(s3, 4).batches(source(keys))]
    assert [pair for batch in batches for pair in batch] == [((k,), f"url:{k}") for k in keys]
    assert [len(batch) for batch in batches] == [4, 4, 2]
    assert [len(call) for call in s3.calls] == [4, 4, 2]


async def test_the_first_batch_is_small_and_each_after_it_doubles_up_to_the_batch_size() -> None:
    """A run's first transfer waits only for FIRST_BATCH keys; then calls grow, so a long run
    makes one call per 1,000 keys (a call costs the client the same whatever its size)."""
    s3 = FakeS3()
    keys = [f"k{i:05d}" for i in range(FIRST_BATCH * 15 + 4000)]
    batches = [batch async for batch in presigner(s3, 1000).batches(source(keys))]
    assert [pair for batch in batches for pair in batch] == [((k,), f"url:{k}") for k in keys]
    sizes = [len(call) for call in s3.calls]
    assert sizes[:4] == [FIRST_BATCH, 2 * FIRST_BATCH, 4 * FIRST_BATCH, 8 * FIRST_BATCH]
    assert sizes[4:] == [1000, 1000, 1000, 1000]
    assert max(sizes) == 1000


async def test_keys_already_known_are_handed_out_while_the_source_waits() -> None:
    s3 = FakeS3()
    release = asyncio.Event()

    async def stalling() -> AsyncIterator[tuple[str]]:
        for i in range(5):  # one full batch and one key of the next, then a slow "page"
            yield (f"a{i}",)
        await release.wait()
        for i in range(3):
            yield (f"b{i}",)

    batches = presigner(s3, 4).batches(stalling())
    first = [pair for _ in range(2) for pair in await asyncio.wait_for(batches.__anext__(), 5)]
    assert [item[0] for item, _ in first] == [f"a{i}" for i in range(5)]
    assert not release.is_set()  # all five went out before the source carried on
    assert all(url == f"url:{item[0]}" for item, url in first)
    release.set()
    rest = [pair async for batch in batches for pair in batch]
    assert [item[0] for item, _ in rest] == ["b0", "b1", "b2"]
    assert [len(call) for call in s3.calls] == [4, 1, 3]


async def test_a_failing_source_hands_out_what_it_gave_then_raises() -> None:
    s3 = FakeS3()

    async def failing() -> AsyncIterator[tuple[str]]:
        yield ("k0",)
        yield ("k1",)
        raise RuntimeError("listing failed")

    got: list[str] = []
    with pytest.raises(RuntimeError, match="listing failed"):
        async for batch in presigner(s3, 4).batches(failing()):
            got.extend(item[0] for item, _ in batch)
    assert got == ["k0", "k1"]


async def test_stopping_early_closes_the_source() -> None:
    s3 = FakeS3()
    closed = asyncio.Event()

    async def endless() -> AsyncIterator[tuple[str]]:
        try:
            i = 0
            while True:
                yield (f"k{i}",)
                i += 1
                await asyncio.sleep(0)
        finally:
            closed.set()

    batches = presigner(s3, 4).batches(endless())
    assert (await batches.__anext__())[0][0] == ("k0",)
    await batches.aclose()
    assert closed.is_set()


async def test_the_read_ahead_holds_two_batches_and_goes_on_at_half() -> None:
    """The reader stops at two batches read ahead and is let on only once half was taken (not
    woken for every item taken)."""
    from rahcp_prefect.bulk.presigner import _ReadAhead

    read: list[int] = []

    async def counting() -> AsyncIterator[tuple[str]]:
        for i in range(100):
            read.append(i)
            yield (f"k{i}",)

    ahead = _ReadAhead(counting(), 8)
    filling = asyncio.ensure_future(ahead.fill())
    await asyncio.sleep(0.01)
    assert len(ahead.items) == 8 and len(read) == 8
    assert [item[0] for item in await ahead.take(3)] == ["k0", "k1", "k2"]
    await asyncio.sleep(0.01)
    assert len(read) == 8  # 5 left: more than half, the reader still waits
    await ahead.take(1)
    await asyncio.sleep(0.01)
    assert len(ahead.items) == 8 and len(read) == 12  # down to half: filled up again
    taken = 4
    while batch := await asyncio.wait_for(ahead.take(8), 1):
        taken += len(batch)
    assert taken == 100 and ahead.ended and ahead.failure is None
    await filling
