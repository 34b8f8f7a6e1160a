"""Keep a lease alive while work runs: call ``renew`` every ``every`` seconds in the background."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

logger = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def renewed(
    renew: Callable[[], Any], every: float, what: str, log: Any = logger
) -> AsyncIterator[None]:
    """Run the body while ``renew()`` is called every ``every`` seconds; a ``renew`` that
    returns ``False`` (the lease is lost) stops the renewals, one that raises is logged and
    tried again next time (a missed renewal may still leave the lease held)."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(every)
            try:
                if renew() is False:
                    return
            except Exception as exc:
                log.warning("%s: renewal failed: %s", what, exc)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
