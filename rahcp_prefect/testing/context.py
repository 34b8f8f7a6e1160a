"""The state every route needs, hung on ``app.state.ctx``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from rahcp_prefect.testing.auth import AuthConfig
from rahcp_prefect.testing.counter import RequestCounter
from rahcp_prefect.testing.faults import FaultInjector
from rahcp_prefect.testing.listing_cache import ListingCache
from rahcp_prefect.testing.mapi_store import NamespaceStore
from rahcp_prefect.testing.namespace_rules import HcpRules
from rahcp_prefect.testing.sigv4 import QueryPresigner


@dataclass
class EmulatorContext:
    """Shared emulator state: the boto3 client, auth settings, MAPI store, faults, counts."""

    s3: Any
    """The single boto3 S3 client used for every S3 call (thread-safe)."""
    signer: Any
    """The boto3 client that signs presigned URLs (``s3`` unless a public endpoint differs)."""
    auth: AuthConfig
    namespaces: NamespaceStore
    faults: FaultInjector
    counter: RequestCounter
    mapi_enabled: bool
    rules: HcpRules | None = None
    """HCP's namespace rules (the S3 server enforces them; bulk delete and holds ask here)."""
    cache: ListingCache = field(default_factory=ListingCache)
    """The reference backend's optional listing/HEAD cache (off by default)."""
    presigner: QueryPresigner | None = None
    """Fast SigV4 signer for plain object URLs (``signer`` still signs multipart parts)."""
    lister: Any = None
    """What lists objects (``list_objects_v2``): an ``S3Lister``, or ``s3`` when None."""
    initiated: dict[str, str] = field(default_factory=dict)
    """When each multipart upload created through the API began (ISO ``...Z``): moto answers
    one fixed date (2010-11-10) for every upload, S3 the real time."""

    @property
    def listing(self) -> Any:
        """The object that serves ``list_objects_v2`` calls."""
        return self.lister if self.lister is not None else self.s3


async def get_ctx(request: Request) -> EmulatorContext:
    """FastAPI dependency: the emulator context (async, so it costs no threadpool hop)."""
    ctx: EmulatorContext = request.app.state.ctx
    return ctx
