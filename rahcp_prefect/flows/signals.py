"""Prefect's SIGTERM bridge, kept while a flow run hears its signals through the event loop.

Prefect's flow engine installs a SIGTERM handler that raises ``TerminationSignal`` wherever the
signal lands (``prefect.utilities.engine.capture_sigterm``), and acknowledges a worker's cancel
(the runner's control channel) only while that handler is the installed one. While a bulk flow
runs, ``rahcp_prefect.interrupts`` installs its own handler, which never raises and hands the
signal on to Prefect's at the flow's edge. This bridge tells Prefect's checks that ours stands
in for its handler, so a cancel through the API is still acknowledged and the run ends
Cancelled, not Crashed; the original is put back as soon as ours is removed.

The names are Prefect's own (``_prefect_sigterm_handler``, ``_prefect_sigterm_bridge_lock``);
without them (another Prefect) nothing is bridged and a worker's cancel ends the run Crashed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from types import FrameType
from typing import Any

from prefect.utilities import engine

from rahcp_prefect.interrupts import Handler, set_bridge, watch_signals


class PrefectBridge:
    """Stands our handler in for Prefect's ``_prefect_sigterm_handler`` while it is installed."""

    def __init__(self) -> None:
        self.original: Any = getattr(engine, "_prefect_sigterm_handler", None)
        self._lock: Any = getattr(engine, "_prefect_sigterm_bridge_lock", None)

    def lock(self) -> AbstractContextManager[Any]:
        return self._lock if self._lock is not None else contextlib.nullcontext()

    def adopt(self, handler: Callable[[int, FrameType | None], None], previous: Handler) -> None:
        if self.original is not None and previous is self.original:
            engine._prefect_sigterm_handler = handler  # type: ignore[assignment]

    def drop(self) -> None:
        if self.original is not None:
            engine._prefect_sigterm_handler = self.original


_BRIDGE = PrefectBridge()


def watch_flow_signals() -> AbstractContextManager[None]:
    """``interrupts.watch_signals`` with Prefect's SIGTERM bridge kept (the flows' job runs)."""
    set_bridge(_BRIDGE)
    return watch_signals()
