"""Flow tests use the session's Prefect API and saved blocks from
``rahcp_prefect.testing.prefect_fixtures`` (registered in ``tests/conftest.py``, shared with
``tests/reliability``); the helpers are re-exported here for ``from .conftest import ...``."""

from __future__ import annotations

from rahcp_prefect.testing.prefect_fixtures import MIB, SavedBlocks, make_tree

__all__ = ["MIB", "SavedBlocks", "make_tree"]
