"""``benchmarks.bytecode``: its count is exact and its parts name where the code lives."""

from __future__ import annotations

import sys

from benchmarks.bytecode import Counting, part_of


def _loop(n: int) -> int:
    total = 0
    for i in range(n):
        total += i
    return total


def _counted(n: int) -> int:
    counting = Counting()
    before = sys.gettrace()
    counting.start()
    _loop(n)
    counting.stop()
    assert sys.gettrace() is before  # a tracer that was on (coverage) is on again
    return counting.counts[_loop.__code__]


def test_the_count_is_the_same_every_time_and_follows_the_work() -> None:
    ten, again, twenty = _counted(10), _counted(10), _counted(20)
    assert ten == again > 0
    per_turn = (twenty - ten) / 10
    assert per_turn >= 3 and ten == _counted(0) + 10 * per_turn


def test_parts() -> None:
    assert part_of("/x/site/rahcp_prefect/bulk/upload.py") == "bulk/upload.py"
    assert part_of("/x/.venv/lib/python3.11/site-packages/aiohttp/client.py") == "aiohttp"
    assert part_of("/x/.venv/lib/python3.11/site-packages/six.py") == "six"
    assert part_of("/x/lib/python3.11/asyncio/base_events.py") == "asyncio"
    assert part_of("/x/lib/python3.11/selectors.py") == "selectors"
    assert part_of("/x/checkout/benchmarks/transfer.py") == "floor"
    assert part_of("<string>") == "<string>"
