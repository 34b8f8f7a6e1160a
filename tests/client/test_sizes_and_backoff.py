"""Pure arithmetic: multipart part sizes, backoff delays, Retry-After, key checks."""

from __future__ import annotations

import math
from typing import Any
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone

import pytest

from rahcp_prefect.client import part_size_for
from rahcp_prefect.client.keys import check_key, encode_key, object_path
from rahcp_prefect.client.retry import MAX_DELAY, backoff_delay, parse_retry_after

MIB = 1024 * 1024


def test_part_size_is_the_chunk_when_it_fits() -> None:
    assert part_size_for(12 * MIB, 5 * MIB) == 5 * MIB
    assert part_size_for(1, 64 * MIB) == 64 * MIB


def test_part_size_never_below_5_mib_and_rounded_to_a_mib() -> None:
    assert part_size_for(100, 1) == 5 * MIB
    assert part_size_for(100, 5 * MIB + 1) == 6 * MIB


def test_part_size_is_raised_so_no_file_needs_more_than_10000_parts() -> None:
    size = 10_000 * 5 * MIB + 1  # one byte too many for 5 MiB parts
    part = part_size_for(size, 5 * MIB)
    assert part == 6 * MIB
    assert math.ceil(size / part) <= 10_000
    huge = 3 * 1024**4  # 3 TiB
    part = part_size_for(huge, 64 * MIB)
    assert part % MIB == 0 and math.ceil(huge / part) <= 10_000 and part > 64 * MIB


def test_part_size_refuses_impossible_objects() -> None:
    with pytest.raises(ValueError, match="10000 parts"):
        part_size_for(10_000 * 5 * 1024 * MIB + 1, 5 * MIB)


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    for attempt in range(5):
        full = 0.1 * 2**attempt
        for _ in range(50):
            delay = backoff_delay(attempt, 0.1)
            assert full / 2 <= delay <= full
    assert backoff_delay(30, 1.0) <= MAX_DELAY
    assert backoff_delay(0, 1.0, retry_after=2.5) == 2.5
    assert backoff_delay(0, 1.0, retry_after=3600) == MAX_DELAY


def test_parse_retry_after() -> None:
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("3") == 3.0
    future = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    assert 25 <= parse_retry_after(future) <= 31


@pytest.mark.parametrize("key", ["", ".", "..", "a/./b", "a/../b", "../x", "x/.."])
def test_unsafe_keys_are_refused_naming_the_key(key: str) -> None:
    with pytest.raises(ValueError) as info:
        check_key(key)
    if key:
        assert repr(key) in str(info.value)


def test_keys_are_percent_encoded_in_paths() -> None:
    assert encode_key("dir/a b?c#d%e+f ü.txt") == "dir/a%20b%3Fc%23d%25e%2Bf%20%C3%BC.txt"
    assert encode_key("..a/b..") == "..a/b.."
    assert object_path("bkt", "x/y z", "/copy") == "/buckets/bkt/objects/x/y%20z/copy"


def test_retry_budget_limits_throttling_in_time_and_other_failures_in_count(monkeypatch: Any) -> None:
    from rahcp_prefect.client import retry

    now = [100.0]
    monkeypatch.setattr(retry, "monotonic", lambda: now[0])
    budget = retry.RetryBudget(max_retries=2, base=1.0, deadline=30.0)
    delays = []
    while (delay := budget.next_delay(throttled=True)) is not None:
        assert delay <= retry.THROTTLE_MAX_DELAY
        delays.append(delay)
        now[0] += delay
    assert len(delays) > 2 and now[0] - 100.0 <= 30.0  # more than max_retries, within the deadline
    other = retry.RetryBudget(max_retries=2, base=1.0, deadline=30.0)
    assert [other.next_delay(throttled=False) is not None for _ in range(3)] == [True, True, False]
    none = retry.RetryBudget(max_retries=2, base=1.0, deadline=0.0)  # no time budget: max_retries
    assert [none.next_delay(throttled=True) is not None for _ in range(3)] == [True, True, False]
