"""Shared fixtures: the HCP emulator over a real moto S3 server, a real PostgreSQL, and one
Prefect API per session with saved blocks for flow tests."""

pytest_plugins = [
    "rahcp_prefect.testing.fixtures",
    "rahcp_prefect.testing.postgres",
    "rahcp_prefect.testing.prefect_fixtures",
]


# -- a hang fails the test, not CI ----------------------------------------------------------

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

END_TO_END_DIRS = ("integration", "reliability")
END_TO_END_TIMEOUT = 300
"""Seconds a test under tests/integration or tests/reliability may take unless it says otherwise
(its own ``@pytest.mark.timeout``); ``slow`` ones (a 40 s complete, a 300 MiB multipart upload
killed and resumed) keep the global 600 s of pyproject.toml."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give end-to-end tests a tighter per-test timeout, so a run that never ends (issue 21)
    fails its test within minutes instead of stalling the suite."""
    here = Path(__file__).parent
    for item in items:
        try:
            area = item.path.relative_to(here).parts[0]
        except ValueError:
            continue
        if area not in END_TO_END_DIRS:
            continue
        if item.get_closest_marker("timeout") is None and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.timeout(END_TO_END_TIMEOUT))
