"""In-memory HCP namespaces per tenant, standing in for HCP's management API (MAPI)."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timezone
from typing import Any

# Every field the backend's namespace model declares; GET returns them all (null when unset).
NAMESPACE_FIELDS: tuple[str, ...] = (
    "name",
    "description",
    "hashScheme",
    "enterpriseMode",
    "hardQuota",
    "softQuota",
    "servicePlan",
    "optimizedFor",
    "directoryUsage",
    "aclsUsage",
    "owner",
    "ownerType",
    "searchEnabled",
    "indexingEnabled",
    "customMetadataIndexingEnabled",
    "replicationEnabled",
    "readFromReplica",
    "allowErasureCoding",
    "serviceRemoteSystemRequests",
    "versioningSettings",
    "tags",
    "creationTime",
    "id",
)
READ_ONLY_FIELDS: frozenset[str] = frozenset({"id", "creationTime", "fullyQualifiedName"})
SUB_RESOURCES: frozenset[str] = frozenset({"versioningSettings", "complianceSettings"})
"""Settings served by their own routes (``.../versioningSettings``, ``.../complianceSettings``)."""
DEFAULT_COMPLIANCE: dict[str, Any] = {
    "retentionDefault": "0",
    "shreddingDefault": False,
    "customMetadataChanges": "ALL",
    "dispositionEnabled": False,
}
"""HCP's compliance settings of a new namespace: no default retention."""


class NamespaceStore:
    """Namespaces of every tenant, keyed by tenant then namespace name (thread-safe)."""

    def __init__(self) -> None:
        self._tenants: dict[str, dict[str, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def names(self, tenant: str) -> list[str]:
        with self._lock:
            return sorted(self._tenants.get(tenant, {}))

    def get(self, tenant: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            stored = self._tenants.get(tenant, {}).get(name)
            return dict(stored) if stored is not None else None

    def find(self, name: str) -> dict[str, Any] | None:
        """The namespace ``name`` in whichever tenant holds it (a bucket is one namespace)."""
        with self._lock:
            for namespaces in self._tenants.values():
                if name in namespaces:
                    return dict(namespaces[name])
            return None

    def tenant_of(self, name: str) -> str | None:
        """The tenant holding namespace ``name``, if any."""
        with self._lock:
            return next((t for t, spaces in self._tenants.items() if name in spaces), None)

    def ensure(self, tenant: str, name: str) -> None:
        """Register ``name`` with HCP's defaults unless some tenant has it (an existing bucket
        is a namespace on HCP, so MAPI knows it)."""
        if self.find(name) is None:
            self.create(tenant, {"name": name})

    def create(self, tenant: str, data: dict[str, Any]) -> bool:
        """Store a new namespace; False when the name exists already."""
        name = data["name"]
        with self._lock:
            namespaces = self._tenants.setdefault(tenant, {})
            if name in namespaces:
                return False
            namespaces[name] = {
                **data,
                "id": str(uuid.uuid4()),
                "creationTime": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "fullyQualifiedName": f"{name}.{tenant}.hcp.local",
            }
            return True

    def update(self, tenant: str, name: str, data: dict[str, Any]) -> bool:
        """Merge ``data`` into a namespace; False when it does not exist."""
        with self._lock:
            stored = self._tenants.get(tenant, {}).get(name)
            if stored is None:
                return False
            stored.update(data)
            return True

    def delete(self, tenant: str, name: str) -> bool:
        with self._lock:
            return self._tenants.get(tenant, {}).pop(name, None) is not None


def namespace_view(stored: dict[str, Any]) -> dict[str, Any]:
    """GET form: every declared field (null when unset) plus any extra stored keys."""
    view = {field: stored.get(field) for field in NAMESPACE_FIELDS}
    view.update({k: v for k, v in stored.items() if k not in view})
    return view


def export_config(name: str, stored: dict[str, Any] | None) -> dict[str, Any]:
    """Export form: writable fields that are set, plus sub-resources; ``{"name"}`` if unknown."""
    if stored is None:
        return {"name": name}
    config: dict[str, Any] = {"name": name}
    for key, value in stored.items():
        if key in READ_ONLY_FIELDS or key in SUB_RESOURCES or value is None:
            continue
        config[key] = value
    config["versioning"] = stored.get("versioningSettings") or {"enabled": False}
    config["compliance"] = stored.get("complianceSettings") or DEFAULT_COMPLIANCE
    return config
