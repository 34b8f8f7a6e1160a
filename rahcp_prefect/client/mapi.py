"""``MapiOps`` (``client.mapi``): HCP namespace administration through the API's MAPI routes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from .client import HCPClient


def _segment(value: str, what: str) -> str:
    if not isinstance(value, str) or not value or value in (".", ".."):
        raise ValueError(f"{what} must be a non-empty name, got {value!r}")
    return quote(value, safe="")


class MapiOps:
    """Namespace list/get/create/update/delete/export under ``/mapi/tenants/{tenant}``."""

    def __init__(self, client: HCPClient) -> None:
        self._client = client

    @staticmethod
    def _namespaces(tenant: str, namespace: str | None = None, suffix: str = "") -> str:
        path = f"/mapi/tenants/{_segment(tenant, 'tenant')}/namespaces"
        if namespace is not None:
            path += f"/{_segment(namespace, 'namespace')}"
        return path + suffix

    async def list_namespaces(self, tenant: str, verbose: bool = False, **params: Any) -> dict[str, Any]:
        """``{"name": [namespace, ...]}``; extra ``params`` (offset, count, sortType...) are forwarded."""
        query = {"verbose": "true" if verbose else "false", **params}
        return await self._client.request_json("GET", self._namespaces(tenant), params=query)

    async def get_namespace(self, tenant: str, namespace: str, verbose: bool = False) -> dict[str, Any]:
        """One namespace's settings."""
        return await self._client.request_json(
            "GET",
            self._namespaces(tenant, namespace),
            params={"verbose": "true" if verbose else "false"},
        )

    async def create_namespace(self, tenant: str, data: dict[str, Any]) -> dict[str, Any]:
        """Create a namespace from ``data`` (``name`` required); 409 ``ConflictError`` if it exists."""
        if not data.get("name"):
            raise ValueError("create_namespace needs data['name']")
        return await self._client.request_json("PUT", self._namespaces(tenant), json=data)

    async def update_namespace(self, tenant: str, namespace: str, data: dict[str, Any]) -> None:
        """Change some settings of a namespace."""
        await self._client.request("POST", self._namespaces(tenant, namespace), json=data)

    async def delete_namespace(self, tenant: str, namespace: str) -> dict[str, Any]:
        """Delete a namespace: ``{"status": "deleted"}``."""
        return await self._client.request_json("DELETE", self._namespaces(tenant, namespace))

    async def export_namespace(self, tenant: str, namespace: str) -> dict[str, Any]:
        """A namespace as a template: ``{"version", "exportedAt", "sourceTenant", "namespaces": [cfg]}``."""
        return await self._client.request_json("GET", self._namespaces(tenant, namespace, "/export"))

    async def export_namespaces(self, tenant: str, names: Sequence[str]) -> dict[str, Any]:
        """Several namespaces as one template bundle."""
        if isinstance(names, str) or not names:
            raise ValueError("export_namespaces needs a non-empty list of namespace names")
        return await self._client.request_json(
            "GET", self._namespaces(tenant, suffix="/export"), params={"names": ",".join(names)}
        )
