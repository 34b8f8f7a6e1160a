"""Run a user's ``validate_file`` callback: async ones awaited, sync ones in a worker thread.

Validators often decode the file (an image, a checksum), which would stall every transfer if
it ran on the event loop; a thread costs some tens of microseconds per file, paid only when a
validator is set.
"""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path

from .config import ValidateFn


async def run_validator(fn: ValidateFn, path: str) -> None:
    """Call ``fn(Path(path))``; whatever it raises propagates to the caller."""
    target = Path(path)
    if inspect.iscoroutinefunction(fn):
        await fn(target)
        return
    result = await asyncio.to_thread(fn, target)
    if inspect.isawaitable(result):
        await result
