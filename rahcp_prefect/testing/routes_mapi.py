"""MAPI namespace routes over the in-memory store — hcp-api.md section 5.

``/namespaces/export`` is declared before ``/namespaces/{ns}`` so the name ``export`` is not
taken for a namespace. The router is mounted only when ``mapi_enabled``.

HCP's namespace rules read these settings (``namespace_rules``): ``versioningSettings``
(``{"enabled": bool, ...}``), ``complianceSettings`` (``retentionDefault``) and the namespace
field ``overwriteEnabled`` (the emulator's name for HCP's S3 overwrite option). A bucket is a
namespace: the routes of a namespace that is not stored but whose bucket exists answer for one
with HCP's defaults (and store it in this tenant).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from rahcp_prefect.testing.auth import require_principal
from rahcp_prefect.testing.context import EmulatorContext, get_ctx
from rahcp_prefect.testing.mapi_store import DEFAULT_COMPLIANCE, export_config, namespace_view
from rahcp_prefect.testing.namespace_rules import retention_until
from rahcp_prefect.testing.storage import s3_call

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
    overwriteEnabled: bool | None = None
    """HCP's S3 overwrite option (off by default: a PUT onto an existing object is a 409). The
    reference documents no MAPI field for it: this name is the emulator's."""


class NamespaceCreate(NamespaceUpdate):
    """A new namespace: ``name`` is required; enums are validated."""

    name: str = Field(min_length=1)
    hashScheme: Literal["MD5", "SHA-1", "SHA-256", "SHA-384", "SHA-512", "RIPEMD-160"] | None = None
    enterpriseMode: bool | None = None
    directoryUsage: Literal["BALANCED", "UNBALANCED"] | None = None
    versioningSettings: dict[str, Any] | None = None


def _not_found(ns: str) -> HTTPException:
    return HTTPException(status_code=404, detail=f"namespace '{ns}' not found")


def _owner(tenant: str, ns: str, ctx: EmulatorContext) -> str:
    """The tenant whose namespace ``ns`` the routes act on: ``tenant`` when it has one, else
    the tenant holding the bucket's namespace (a bucket is one namespace, whoever set it up);
    an existing bucket nobody registered becomes ``tenant``'s with HCP's defaults; 404 else."""
    if ctx.namespaces.get(tenant, ns) is not None:
        return tenant
    owner = ctx.namespaces.tenant_of(ns)
    if owner is None and _bucket_exists(ctx, ns):
        ctx.namespaces.ensure(tenant, ns)
        owner = tenant
    if owner is None:
        raise _not_found(ns)
    return owner


def _namespace(tenant: str, ns: str, ctx: EmulatorContext) -> dict[str, Any]:
    """The namespace the routes of ``tenant``/``ns`` act on (see ``_owner``)."""
    stored = ctx.namespaces.get(_owner(tenant, ns, ctx), ns)
    if stored is None:  # deleted meanwhile
        raise _not_found(ns)
    return stored


def _bucket_exists(ctx: EmulatorContext, bucket: str) -> bool:
    try:
        s3_call(f"bucket '{bucket}'", ctx.s3.head_bucket, Bucket=bucket)
    except HTTPException:
        return False
    return True


class ComplianceSettings(BaseModel):
    """HCP's namespace compliance settings; ``retentionDefault`` is an HCP retention value:
    ``"0"`` (none), ``"-1"`` (forever), ``"-2"`` (unspecified: kept), ``"+1y"``, ``"+30s"``..."""

    model_config = ConfigDict(extra="allow")

    retentionDefault: str | None = None
    shreddingDefault: bool | None = None
    customMetadataChanges: str | None = None
    dispositionEnabled: bool | None = None


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
def get_versioning(tenant: str, ns: str, ctx: EmulatorContext = Depends(get_ctx)) -> Any:
    return _namespace(tenant, ns, ctx).get("versioningSettings") or {"enabled": False}


@router.post("/namespaces/{ns}/versioningSettings")
def set_versioning(
    tenant: str, ns: str, body: dict[str, Any], ctx: EmulatorContext = Depends(get_ctx)
) -> dict[str, str]:
    ctx.namespaces.update(_owner(tenant, ns, ctx), ns, {"versioningSettings": body})
    return {"status": "updated"}


@router.get("/namespaces/{ns}/complianceSettings")
def get_compliance(tenant: str, ns: str, ctx: EmulatorContext = Depends(get_ctx)) -> Any:
    return _namespace(tenant, ns, ctx).get("complianceSettings") or DEFAULT_COMPLIANCE


@router.post("/namespaces/{ns}/complianceSettings")
def set_compliance(
    tenant: str, ns: str, body: ComplianceSettings, ctx: EmulatorContext = Depends(get_ctx)
) -> dict[str, str]:
    """Merge compliance settings; a default retention HCP would not parse is a 400."""
    stored = _namespace(tenant, ns, ctx)
    changes = body.model_dump(exclude_unset=True)
    try:
        retention_until(changes.get("retentionDefault"), 0.0)
    except ValueError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    merged = {**(stored.get("complianceSettings") or DEFAULT_COMPLIANCE), **changes}
    ctx.namespaces.update(_owner(tenant, ns, ctx), ns, {"complianceSettings": merged})
    return {"status": "updated"}


@router.delete("/namespaces/{ns}/versioningSettings")
def delete_versioning(
    tenant: str, ns: str, ctx: EmulatorContext = Depends(get_ctx)
) -> dict[str, str]:
    ctx.namespaces.update(_owner(tenant, ns, ctx), ns, {"versioningSettings": None})
    return {"status": "deleted"}


@router.get("/namespaces/{ns}")
def get_namespace(
    tenant: str, ns: str, verbose: bool = False, ctx: EmulatorContext = Depends(get_ctx)
) -> dict[str, Any]:
    return namespace_view(_namespace(tenant, ns, ctx))


@router.head("/namespaces/{ns}")
def head_namespace(tenant: str, ns: str, ctx: EmulatorContext = Depends(get_ctx)) -> Response:
    try:
        _namespace(tenant, ns, ctx)
    except HTTPException:
        return Response(status_code=404)
    return Response(status_code=200)


@router.post("/namespaces/{ns}")
async def update_namespace(
    tenant: str,
    ns: str,
    body: NamespaceUpdate,
    resetMQECheckpoint: str | None = None,  # noqa: N803 (query name on the wire)
    ctx: EmulatorContext = Depends(get_ctx),
) -> dict[str, str]:
    ctx.namespaces.update(_owner(tenant, ns, ctx), ns, body.model_dump(exclude_unset=True))
    return {"status": "updated"}


@router.delete("/namespaces/{ns}")
async def delete_namespace(
    tenant: str, ns: str, ctx: EmulatorContext = Depends(get_ctx)
) -> dict[str, str]:
    if not ctx.namespaces.delete(tenant, ns):
        raise _not_found(ns)
    return {"status": "deleted"}
