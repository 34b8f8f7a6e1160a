"""MAPI namespace routes over the in-memory store — hcp-api.md section 5.

``/namespaces/export`` is declared before ``/namespaces/{ns}`` so the name ``export`` is not
taken for a namespace. The router is mounted only when ``mapi_enabled``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from rahcp_prefect.testing.auth import require_principal
from rahcp_prefect.testing.context import EmulatorContext, get_ctx
from rahcp_prefect.testing.mapi_store import export_config, namespace_view

router = APIRouter(prefix="/mapi/tenants/{tenant}", dependencies=[Depends(require_principal)])


class NamespaceUpdate(BaseModel):
    """Fields that can change after creation; unknown keys are dropped silently."""

    model_config = ConfigDict(extra="ignore")

    description: str | None = None
    hardQuota: str | None = None
    softQuota: int | None = Field(default=None, ge=0, le=100)
    servicePlan: str | None = None
    optimizedFor: Literal["CLOUD", "ALL"] | None = None
    aclsUsage: Literal["NOT_ENABLED", "ENFORCED", "NOT_ENFORCED"] | None = None
    owner: str | None = None
    ownerType: Literal["LOCAL", "EXTERNAL"] | None = None
    searchEnabled: bool | None = None
    indexingEnabled: bool | None = None
    customMetadataIndexingEnabled: bool | None = None
    replicationEnabled: bool | None = None
    readFromReplica: bool | None = None
    allowErasureCoding: bool | None = None
    serviceRemoteSystemRequests: bool | None = None
    retentionType: Literal["HCP", "S3"] | None = None
    tags: dict[str, Any] | None = None


class NamespaceCreate(NamespaceUpdate):
    """A new namespace: ``name`` is required; enums are validated."""

    name: str = Field(min_length=1)
    hashScheme: Literal["MD5", "SHA-1", "SHA-256", "SHA-384", "SHA-512", "RIPEMD-160"] | None = None
    enterpriseMode: bool | None = None
    directoryUsage: Literal["BALANCED", "UNBALANCED"] | None = None
    versioningSettings: dict[str, Any] | None = None


def _not_found(ns: str) -> HTTPException:
    return HTTPException(status_code=404, detail=f"namespace '{ns}' not found")


def _export(tenant: str, names: list[str], ctx: EmulatorContext) -> dict[str, Any]:
    return {
        "version": "1.0",
        "exportedAt": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "sourceTenant": tenant,
        "namespaces": [export_config(n, ctx.namespaces.get(tenant, n)) for n in names],
    }


@router.get("/namespaces")
async def list_namespaces(
    tenant: str,
    offset: int = Query(default=0, ge=0),
    count: int | None = Query(default=None, ge=0),
    ctx: EmulatorContext = Depends(get_ctx),
) -> dict[str, Any]:
    names = ctx.namespaces.names(tenant)[offset:]
    return {"name": names if count is None else names[:count]}


@router.put("/namespaces", status_code=201)
async def create_namespace(
    tenant: str, body: NamespaceCreate, ctx: EmulatorContext = Depends(get_ctx)
) -> dict[str, str]:
    if not ctx.namespaces.create(tenant, body.model_dump(exclude_unset=True)):
        raise HTTPException(
            status_code=409, detail=f"namespace '{body.name}': namespace already exists"
        )
    return {"status": "created", "name": body.name}


@router.get("/namespaces/export")
async def export_namespaces(
    tenant: str, names: str = Query(), ctx: EmulatorContext = Depends(get_ctx)
) -> dict[str, Any]:
    """Export several namespaces (``?names=a,b``); unknown names export as ``{"name": ...}``."""
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    return _export(tenant, wanted, ctx)


@router.get("/namespaces/{ns}/export")
async def export_namespace(
    tenant: str, ns: str, ctx: EmulatorContext = Depends(get_ctx)
) -> dict[str, Any]:
    return _export(tenant, [ns], ctx)


@router.get("/namespaces/{ns}/versioningSettings")
async def get_versioning(tenant: str, ns: str, ctx: EmulatorContext = Depends(get_ctx)) -> Any:
    stored = ctx.namespaces.get(tenant, ns)
    if stored is None:
        raise _not_found(ns)
    return stored.get("versioningSettings") or {"enabled": False}


@router.post("/namespaces/{ns}/versioningSettings")
async def set_versioning(
    tenant: str, ns: str, body: dict[str, Any], ctx: EmulatorContext = Depends(get_ctx)
) -> dict[str, str]:
    if not ctx.namespaces.update(tenant, ns, {"versioningSettings": body}):
        raise _not_found(ns)
    return {"status": "updated"}


@router.delete("/namespaces/{ns}/versioningSettings")
async def delete_versioning(
    tenant: str, ns: str, ctx: EmulatorContext = Depends(get_ctx)
) -> dict[str, str]:
    if not ctx.namespaces.update(tenant, ns, {"versioningSettings": None}):
        raise _not_found(ns)
    return {"status": "deleted"}


@router.get("/namespaces/{ns}")
async def get_namespace(
    tenant: str, ns: str, verbose: bool = False, ctx: EmulatorContext = Depends(get_ctx)
) -> dict[str, Any]:
    stored = ctx.namespaces.get(tenant, ns)
    if stored is None:
        raise _not_found(ns)
    return namespace_view(stored)


@router.head("/namespaces/{ns}")
async def head_namespace(tenant: str, ns: str, ctx: EmulatorContext = Depends(get_ctx)) -> Response:
    return Response(status_code=200 if ctx.namespaces.get(tenant, ns) is not None else 404)


@router.post("/namespaces/{ns}")
async def update_namespace(
    tenant: str,
    ns: str,
    body: NamespaceUpdate,
    resetMQECheckpoint: str | None = None,  # noqa: N803 (query name on the wire)
    ctx: EmulatorContext = Depends(get_ctx),
) -> dict[str, str]:
    if not ctx.namespaces.update(tenant, ns, body.model_dump(exclude_unset=True)):
        raise _not_found(ns)
    return {"status": "updated"}


@router.delete("/namespaces/{ns}")
async def delete_namespace(
    tenant: str, ns: str, ctx: EmulatorContext = Depends(get_ctx)
) -> dict[str, str]:
    if not ctx.namespaces.delete(tenant, ns):
        raise _not_found(ns)
    return {"status": "deleted"}
