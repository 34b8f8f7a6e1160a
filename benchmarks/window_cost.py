"""What the adaptive window costs per request: a no-op handler called ``--calls`` times plainly,
through a fixed window and through an adaptive one, in one process (CPU per call, best of 3).

    python -m benchmarks.window_cost [--calls 200000]

Prints one JSON object: microseconds per call for each, and the window's share over plain.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
from typing import Any

from rahcp_prefect.client.concurrency import AdaptiveWindow, client_signals


class _Counters:
    """A client's counters, as ``client_signals`` reads them."""

    api_throttled = api_retries = 0

    class data:  # noqa: N801 - the client's attribute name
        throttled = retries = 0


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _handle(item: Any, url: str | None) -> None:
    return None


async def _per_call(handle: Any, calls: int) -> float:
    item = ("key", 10_000)
    best = float("inf")
    for _ in range(3):
        started = _cpu()
        for _ in range(calls):
            await handle(item, None)
        best = min(best, _cpu() - started)
    return best / calls * 1e6


async def main(calls: int) -> dict[str, Any]:
    signals = client_signals(_Counters())
    plain = await _per_call(_handle, calls)
    fixed = await _per_call(AdaptiveWindow(10, signals, cap=10).gate(_handle, 1), calls)
    adaptive = await _per_call(AdaptiveWindow(10, signals, cap=256).gate(_handle, 1), calls)
    return {"scenario": "window-cost", "calls": calls, "plain_us": round(plain, 3), "fixed_us": round(fixed, 3),
            "adaptive_us": round(adaptive, 3), "adaptive_over_plain_us": round(adaptive - plain, 3)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.window_cost")
    parser.add_argument("--calls", type=int, default=200_000)
    print(json.dumps(asyncio.run(main(parser.parse_args().calls))))
