"""rahcp-prefect: Prefect 3 integration for Hitachi Content Platform (HCP).

The SDK (``rahcp_prefect.client``), tracker (``rahcp_prefect.tracker``) and engine
(``rahcp_prefect.bulk``) never import Prefect. The Prefect-facing names below (blocks,
tasks, flows) are resolved lazily, so ``import rahcp_prefect.client`` stays Prefect-free
while ``prefect block register -m rahcp_prefect`` still finds the blocks.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "HCPCredentials": "rahcp_prefect.blocks",
    "HCPTransferSettings": "rahcp_prefect.blocks",
    "HCPTracker": "rahcp_prefect.blocks",
    "HCPBucket": "rahcp_prefect.bucket",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rahcp_prefect' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
