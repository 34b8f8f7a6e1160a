"""The typed public API stays clean under mypy (the scope is ``[tool.mypy] files`` in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]


def test_mypy_is_clean_on_the_public_api() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", "--show-error-codes"],
        cwd=PROJECT, capture_output=True, text=True, timeout=540,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_the_scope_covers_each_layer_the_blocks_tasks_and_flows() -> None:
    scope = tomllib.loads((PROJECT / "pyproject.toml").read_text())["tool"]["mypy"]["files"]
    for layer in ("rahcp_prefect/client", "rahcp_prefect/tracker", "rahcp_prefect/bulk", "rahcp_prefect/job",
                  "rahcp_prefect/blocks.py", "rahcp_prefect/tasks.py", "rahcp_prefect/flows", "rahcp_prefect/report",
                  "rahcp_prefect/events.py"):
        assert layer in scope
        assert (PROJECT / layer).exists(), layer


def test_the_package_says_it_is_typed() -> None:
    assert (PROJECT / "rahcp_prefect" / "py.typed").is_file()
