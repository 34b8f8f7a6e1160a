"""What the data plane does once per file, kept to what each file needs (issue 31, item 3): a
hasher that a reset before its first bytes does not rebuild and that computes a hex digest once,
and a retry budget made only when a request fails, still counted from the first attempt."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from rahcp_prefect.client import retry, retry_loop
from rahcp_prefect.client.dataplane import DataPlane
from rahcp_prefect.client.digests import Hasher
from rahcp_prefect.client.errors import PresignedTransferError
from rahcp_prefect.client.presigned_answers import _TryAgain


def test_hasher_digests_follow_resets_and_updates() -> None:
    hasher = Hasher()
    hasher.reset()  # before any bytes, as the data plane does on each attempt
    hasher.update(b"first try, cut short")
    assert hasher.md5 == hashlib.md5(b"first try, cut short").hexdigest()
    hasher.reset()  # a retried GET starts over
    hasher.update(b"ab")
    assert hasher.md5 == hashlib.md5(b"ab").hexdigest()
    assert hasher.md5 == hashlib.md5(b"ab").hexdigest()  # read twice: same answer
    hasher.update(b"c")  # bytes after a read: the digest moves on
    assert hasher.md5 == hashlib.md5(b"abc").hexdigest()
    assert hasher.sha256 == hashlib.sha256(b"abc").hexdigest()
    hasher.reset()
    assert hasher.md5 == hashlib.md5(b"").hexdigest()
    assert hasher.sha256 == hashlib.sha256(b"").hexdigest()


def test_hasher_computes_only_what_it_was_asked_for() -> None:
    only_sha = Hasher(md5=False)
    only_sha.update(b"x")
    assert only_sha.md5 is None and only_sha.sha256 == hashlib.sha256(b"x").hexdigest()
    only_md5 = Hasher(sha256=False)
    only_md5.reset()
    only_md5.update(b"x")
    assert only_md5.sha256 is None and only_md5.md5 == hashlib.md5(b"x").hexdigest()


@pytest.mark.parametrize("deadline, attempts", [(10.0, 3), (3.0, 1)])
async def test_the_throttling_deadline_counts_from_the_first_attempt(
    monkeypatch: Any, deadline: float, attempts: int
) -> None:
    """Each attempt takes 4 s (a fake clock) and is throttled. Counted from the first attempt's
    start, a 10 s deadline allows the attempts ending at 4 and 8 s a retry and not the one
    ending at 12 s: 3 attempts (counted from the first failure it would be 4)."""
    now = [0.0]
    monkeypatch.setattr(retry_loop, "monotonic", lambda: now[0])  # the retry loop's clock
    monkeypatch.setattr(retry, "monotonic", lambda: now[0])
    plane = DataPlane(max_retries=0, retry_base_delay=0.0001, retry_deadline=deadline)
    made = 0

    async def attempt() -> tuple[int, int]:
        nonlocal made
        made += 1
        now[0] += 4.0
        raise _TryAgain("Slow Down", 503, throttled=True)

    with pytest.raises(PresignedTransferError):
        await plane._retrying("PUT", "bkt/key", attempt)
    assert made == attempts
    assert plane.throttled == attempts and plane.retries == attempts - 1
