"""The presigner on its own (a fake API): full batches from a fast source, signed keys handed out
while a slow source waits, a failing source, and an early stop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from rahcp_prefect.bulk.presigner import Presigner


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
    got = [pair async for pair in presigner(s3, 4).pairs(source(keys))]
    assert got == [((k,), f"url:{k}") for k in keys]
    assert [len(call) for call in s3.calls] == [4, 4, 2]


async def test_keys_already_known_are_handed_out_while_the_source_waits() -> None:
    s3 = FakeS3()
    release = asyncio.Event()

    async def stalling() -> AsyncIterator[tuple[str]]:
        for i in range(5):  # one full batch and one key of the next, then a slow "page"
            yield (f"a{i}",)
        await release.wait()
        for i in range(3):
            yield (f"b{i}",)

    pairs = presigner(s3, 4).pairs(stalling())
    first = [await asyncio.wait_for(pairs.__anext__(), 5) for _ in range(5)]
    assert [item[0] for item, _ in first] == [f"a{i}" for i in range(5)]
    assert not release.is_set()  # all five went out before the source carried on
    assert all(url == f"url:{item[0]}" for item, url in first)
    release.set()
    rest = [pair async for pair in pairs]
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
        async for item, _ in presigner(s3, 4).pairs(failing()):
            got.append(item[0])
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

    pairs = presigner(s3, 4).pairs(endless())
    assert (await pairs.__anext__())[0] == ("k0",)
    await pairs.aclose()
    assert closed.is_set()
