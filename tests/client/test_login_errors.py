"""Login failures that tell the user what to fix: the URL tried, and the missing /api/v1."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from rahcp_prefect.client import AuthenticationError, HCPClient


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _login_error(**settings: Any) -> AuthenticationError:
    with pytest.raises(AuthenticationError) as info:
        async with HCPClient(max_retries=1, retry_base_delay=0.01, **settings):
            pass
    return info.value


async def test_endpoint_without_api_v1_says_to_add_it(hcp_emulator: Any, hcp_credentials: dict[str, Any]) -> None:
    root = hcp_emulator.root_url.rstrip("/")
    error = await _login_error(**{**hcp_credentials, "endpoint": root})
    assert error.status_code == 404
    assert error.message == (
        f"Login failed: 404 at {root}/auth/token: the endpoint must be the API base URL, add /api/v1 ({root}/api/v1)"
    )


async def test_404_on_an_api_v1_endpoint_does_not_suggest_adding_it(
    hcp_emulator: Any, hcp_credentials: dict[str, Any]
) -> None:
    endpoint = f"{hcp_emulator.root_url.rstrip('/')}/other/api/v1"
    error = await _login_error(**{**hcp_credentials, "endpoint": endpoint})
    assert error.message == f"Login failed: 404 at {endpoint}/auth/token: no login route there (is this the HCP backend API?)"


async def test_a_server_not_running_names_the_url_tried() -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}/api/v1"
    error = await _login_error(endpoint=endpoint, username="u", password="a-password")
    assert error.message == f"Login failed: ConnectError: could not reach {endpoint}/auth/token"
    assert "a-password" not in str(error)


async def test_a_wrong_password_keeps_its_short_message(hcp_emulator: Any) -> None:
    from rahcp_prefect.testing.emulator import HCPEmulator

    with HCPEmulator(s3_endpoint=hcp_emulator.s3_endpoint, users={"alice": "right-pass"}) as strict:
        error = await _login_error(endpoint=strict.base_url, username="alice", password="wrong-pass")
    assert str(error) == "401 Login failed: 401"
