"""Load a block by name, or say which block is missing and how to create it.

Prefect's own error (``Unable to find block document named hcp for block type hcp-credentials``)
does not say that ``rahcp-prefect setup`` creates the blocks the deployments name.
"""

from __future__ import annotations

from typing import TypeVar

from prefect.blocks.core import Block
from rahcp_prefect.errors import RahcpError

B = TypeVar("B", bound=Block)

_PYTHON_EXAMPLES = {
    "HCPCredentials": 'HCPCredentials(endpoint="https://hcp.example/api/v1", username=..., password=...)',
    "HCPTransferSettings": "HCPTransferSettings()",
    "HCPTracker": 'HCPTracker(postgres_dsn="postgresql://...")  # or HCPTracker(sqlite_path=...)',
}


class BlockNotFoundError(RahcpError, ValueError):
    """No block of that type and name on the Prefect server; the message says how to create it."""


def missing_block_message(block_type: type[Block], name: str) -> str:
    """One line: which block is missing, where, and the two ways to create it."""
    from prefect.settings import get_current_settings

    server = get_current_settings().api.url or "the local (ephemeral) Prefect API: PREFECT_API_URL is not set"
    example = _PYTHON_EXAMPLES.get(block_type.__name__, f"{block_type.__name__}(...)")
    return (
        f"no {block_type.get_block_type_name()} block named {name!r} on {server}: create it with "
        f"`rahcp-prefect setup` or in Python with `from rahcp_prefect.blocks import {block_type.__name__}; "
        f"{example}.save({name!r})`"
    )


async def aload_block(block_type: type[B], name: str) -> B:
    """``block_type.aload(name)``, raising ``BlockNotFoundError`` with the way out if it is missing."""
    try:
        return await block_type.aload(name)
    except ValueError as exc:
        if "Unable to find block document" not in str(exc):
            raise
        raise BlockNotFoundError(missing_block_message(block_type, name)) from None
