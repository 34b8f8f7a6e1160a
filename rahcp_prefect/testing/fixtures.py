"""pytest fixtures around one HCP emulator per test session (registered by tests/conftest.py).

* ``hcp_emulator_session`` — the started ``HCPEmulator`` (session scope).
* ``hcp_emulator`` — the same emulator; faults cleared, counts reset and the mode set back to
  the default (``"hcp"``: HCP's namespace rules, see ``namespace_rules``) around each test.
* ``hcp_mode`` — the same emulator enforcing HCP's namespace rules for one test.
* ``hcp_staging_bucket`` — a second fresh bucket (another namespace).
* ``hcp_s3_mode`` — the same emulator in permissive ``"s3"`` mode for one test (plain S3:
  overwrites succeed, nothing is retained), for tests that need such a store.
* ``hcp_bucket`` — a fresh, uniquely named bucket (emptied and deleted afterwards).
* ``hcp_credentials`` — ``endpoint``/``username``/``password``/``tenant`` for ``HCPClient``.
* ``hcp_client`` — an open ``rahcp_prefect.client.HCPClient`` with fast retries.

The session emulator accepts any non-empty credentials. For bad-credential tests, start a strict
emulator over the same S3 server:
``HCPEmulator(s3_endpoint=hcp_emulator.s3_endpoint, users={"tester": "..."})``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio

if TYPE_CHECKING:
    from rahcp_prefect.testing.emulator import HCPEmulator

TEST_USERNAME = "tester"
TEST_PASSWORD = "s3cr3t-Pa55word!"
TEST_TENANT = "dev-ai"


@pytest.fixture(scope="session")
def hcp_emulator_session() -> Iterator[HCPEmulator]:
    from rahcp_prefect.testing import HCPEmulator  # names the extra to install when it is missing

    with HCPEmulator() as emulator:
        yield emulator


@pytest.fixture
def hcp_emulator(hcp_emulator_session: HCPEmulator) -> Iterator[HCPEmulator]:
    from rahcp_prefect.testing.namespace_rules import DEFAULT_MODE

    hcp_emulator_session.faults.clear()
    hcp_emulator_session.reset_counts()
    hcp_emulator_session.mode = DEFAULT_MODE
    yield hcp_emulator_session
    hcp_emulator_session.faults.clear()
    hcp_emulator_session.reset_counts()
    hcp_emulator_session.mode = DEFAULT_MODE


@pytest.fixture
def hcp_s3_mode(hcp_emulator: HCPEmulator) -> HCPEmulator:
    """The emulator as permissive plain S3 for this test (``hcp_emulator`` restores the mode)."""
    hcp_emulator.mode = "s3"
    return hcp_emulator


@pytest.fixture
def hcp_mode(hcp_emulator: HCPEmulator) -> HCPEmulator:
    """The emulator enforcing HCP's namespace rules for this test (``hcp_emulator`` restores the mode)."""
    hcp_emulator.mode = "hcp"
    return hcp_emulator


@pytest.fixture
def hcp_bucket(hcp_emulator: HCPEmulator) -> Iterator[str]:
    name = f"test-{uuid.uuid4().hex[:16]}"
    hcp_emulator.create_bucket(name)
    yield name
    _delete_bucket(hcp_emulator, name)


@pytest.fixture
def hcp_staging_bucket(hcp_emulator: HCPEmulator) -> Iterator[str]:
    """A second fresh bucket (another namespace, HCP's defaults), e.g. for ``staging_bucket``."""
    name = f"stage-{uuid.uuid4().hex[:16]}"
    hcp_emulator.create_bucket(name)
    yield name
    _delete_bucket(hcp_emulator, name)


def _delete_bucket(emulator: HCPEmulator, name: str) -> None:
    """Best-effort cleanup so moto's memory does not grow over a long session."""
    from rahcp_prefect.testing.storage import empty_bucket

    try:
        empty_bucket(emulator.s3, name)
        emulator.s3.delete_bucket(Bucket=name)
    except Exception:  # the test may have deleted it already
        pass


@pytest.fixture
def hcp_credentials(hcp_emulator: HCPEmulator) -> dict[str, Any]:
    return {
        "endpoint": hcp_emulator.base_url,
        "username": TEST_USERNAME,
        "password": TEST_PASSWORD,
        "tenant": TEST_TENANT,
    }


@pytest_asyncio.fixture
async def hcp_client(hcp_credentials: dict[str, Any]) -> AsyncIterator[Any]:
    from rahcp_prefect.client import HCPClient  # written in parallel; imported lazily

    async with HCPClient(
        **hcp_credentials, retry_base_delay=0.01, max_retries=3, timeout=10.0
    ) as client:
        yield client
