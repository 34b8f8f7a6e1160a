"""While a bulk flow's job watches its signals, Prefect still sees its SIGTERM bridge installed
(``flows/signals.py``): a worker's cancel intent is acknowledged, so the run ends Cancelled."""

from __future__ import annotations

import signal

import pytest
from prefect.utilities import engine
from prefect.utilities.engine import can_ack_control_intent, capture_sigterm, is_prefect_sigterm_handler_installed

from rahcp_prefect.flows.signals import watch_flow_signals


@pytest.mark.timeout(30)
async def test_prefect_acknowledges_a_cancel_while_our_handler_stands_in_for_its_bridge() -> None:
    original = engine._prefect_sigterm_handler
    with capture_sigterm():  # what Prefect's flow engine does around a flow run
        assert can_ack_control_intent()
        with watch_flow_signals():
            assert signal.getsignal(signal.SIGTERM) is not original, "ours is installed"
            assert can_ack_control_intent() and is_prefect_sigterm_handler_installed()
        assert signal.getsignal(signal.SIGTERM) is original and engine._prefect_sigterm_handler is original
        assert can_ack_control_intent()
