"""What a bucket (an HCP namespace) does with overwrites and deletes, asked before a job writes.

HCP decides per namespace (``hcp-api.md`` section 11): without versioning and with the
overwrite option off (HCP's default) a copy onto an existing object is refused (409); a default
retention keeps every object stored there, staging included (a delete is refused, 403). The
settings are read through MAPI when the API serves it (``/capabilities``) and the client knows
its tenant; otherwise they are ``unknown`` and the job learns them from the first refusal.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .errors import HCPError, NotFoundError

if TYPE_CHECKING:
    from .client import HCPClient

logger = logging.getLogger(__name__)

NO_RETENTION = frozenset({"", "0"})
"""HCP's ``retentionDefault`` values that retain nothing (``0``: deletion allowed)."""


_OFFSET = re.compile(r"\+?(\d+)([yMwdhms])")
_OFFSET_TEXT = re.compile(r"(\+?\d+[yMwdhms])+")
_UNIT_SECONDS = {"y": 365 * 86400, "M": 30 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_FOREVER = ("-1", "-2")


def retention_until(expression: str | None, stored_at: float) -> float | None:
    """When retention set by an HCP retention ``expression`` ends for an object stored at
    ``stored_at`` (epoch seconds): None for no retention (``"0"``, empty), ``inf`` for
    ``"-1"`` (deletion prohibited) and ``"-2"`` (initial unspecified), an offset such as
    ``"+1y+2d"`` (also ``"+1y2d"``) or ``"+3s"``, or an ISO-8601 date."""
    text = (expression or "").strip()
    if text in ("", "0"):
        return None
    if text in _FOREVER:
        return math.inf
    if text.startswith("+"):
        pieces = _OFFSET.findall(text)
        if not _OFFSET_TEXT.fullmatch(text[1:]):
            raise ValueError(f"retention {expression!r}: expected an offset like '+1y' or '+30s'")
        return stored_at + sum(int(n) * _UNIT_SECONDS[u] for n, u in pieces)
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise ValueError(
            f"retention {expression!r}: expected '0', '-1', '-2', an offset like '+1y' or an ISO date"
        ) from None


@dataclass(frozen=True)
class NamespaceRules:
    """A namespace's answer to overwrites and deletes; ``known`` False: MAPI could not say."""

    name: str
    known: bool = False
    versioned: bool = False
    overwrite: bool = False
    retention_default: str | None = None  # HCP's expression (``+1y``, ``-1``...), None: none

    @property
    def copies_over(self) -> bool:
        """A copy onto an existing object replaces it (a new version, or the overwrite option)."""
        return self.versioned or self.overwrite

    @property
    def retains(self) -> bool:
        """Every object stored here is retained (a default retention): staging may not live here."""
        return self.retention_default is not None

    def describe(self) -> str:
        if not self.known:
            return f"namespace {self.name}: settings unknown (no MAPI): learnt from the first refusal"
        commit = "copy over" if self.copies_over else "safe replace (delete, copy, check) for changed files"
        versioning = "versioning on" if self.versioned else "versioning off"
        overwrite = "overwrite on" if self.overwrite else "overwrite off"
        retention = f"default retention {self.retention_default}" if self.retains else "no default retention"
        return f"namespace {self.name}: {versioning}, {overwrite}, {retention}: {commit}"

    @classmethod
    def from_mapi(cls, name: str, record: dict[str, Any]) -> NamespaceRules:
        """The rules of a MAPI namespace record (``versioningSettings``, ``overwriteEnabled``,
        ``complianceSettings.retentionDefault``)."""
        versioning = record.get("versioningSettings") or {}
        compliance = record.get("complianceSettings") or {}
        default = str(compliance.get("retentionDefault") or "").strip()
        return cls(
            name=name,
            known=True,
            versioned=bool(versioning.get("enabled")),
            overwrite=bool(record.get("overwriteEnabled")),
            retention_default=None if default in NO_RETENTION else default,
        )


def tenant_of(client: HCPClient) -> str | None:
    """The tenant the client logs in to: its ``tenant``, else the part of ``tenant/user``."""
    if client.config.tenant:
        return client.config.tenant
    user = client.config.username
    return user.split("/", 1)[0] or None if "/" in user else None


async def namespace_rules(client: HCPClient, bucket: str) -> NamespaceRules:
    """Ask MAPI what ``bucket`` does; ``known=False`` when the API serves no MAPI, the client
    has no tenant, or MAPI does not answer (the job then learns from the first refusal)."""
    tenant = tenant_of(client)
    try:
        capabilities = await client.request_json("GET", "/capabilities")
        if not (capabilities or {}).get("mapi_enabled") or tenant is None:
            return NamespaceRules(bucket)
        record = await client.mapi.get_namespace(tenant, bucket, verbose=True)
        for part in ("versioningSettings", "complianceSettings"):
            if not isinstance(record.get(part), dict):
                record[part] = await _sub_resource(client, tenant, bucket, part)
    except HCPError as exc:
        logger.info("Namespace %s: settings not readable through MAPI (%s): learnt from refusals", bucket, exc)
        return NamespaceRules(bucket)
    rules = NamespaceRules.from_mapi(bucket, record)
    logger.info("%s", rules.describe())
    return rules


async def _sub_resource(client: HCPClient, tenant: str, bucket: str, part: str) -> dict[str, Any]:
    path = client.mapi._namespaces(tenant, bucket, f"/{part}")
    try:
        return await client.request_json("GET", path) or {}
    except NotFoundError:
        return {}
