"""MapiOps against the emulator's in-memory MAPI: the namespace lifecycle."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from rahcp_prefect.client import ConflictError, HCPClient, NotFoundError

TENANT = "dev-ai"


async def test_namespace_lifecycle(hcp_client: HCPClient, counts: Any) -> None:
    mapi = hcp_client.mapi
    name = f"ns-{uuid.uuid4().hex[:8]}"
    other = name + "-b"
    created = await mapi.create_namespace(TENANT, {"name": name, "description": "first", "hardQuota": "100 GB", "softQuota": 80})
    assert created == {"status": "created", "name": name}
    await mapi.create_namespace(TENANT, {"name": other})
    try:
        assert {name, other} <= set((await mapi.list_namespaces(TENANT, verbose=True))["name"])

        ns = await mapi.get_namespace(TENANT, name, verbose=True)
        assert ns["name"] == name and ns["description"] == "first" and ns["hardQuota"] == "100 GB"

        await counts.reset()
        assert await mapi.update_namespace(TENANT, name, {"description": "second"}) is None
        assert (await counts())[("api", "POST", "/mapi/tenants/{tenant}/namespaces/{ns}")] == 1
        assert (await mapi.get_namespace(TENANT, name))["description"] == "second"

        exported = await mapi.export_namespace(TENANT, name)
        assert exported["sourceTenant"] == TENANT
        assert [cfg["name"] for cfg in exported["namespaces"]] == [name]

        bundle = await mapi.export_namespaces(TENANT, [name, other])
        assert [cfg["name"] for cfg in bundle["namespaces"]] == [name, other]

        with pytest.raises(ConflictError):
            await mapi.create_namespace(TENANT, {"name": name})
    finally:
        assert (await mapi.delete_namespace(TENANT, name))["status"] == "deleted"
        await mapi.delete_namespace(TENANT, other)
    with pytest.raises(NotFoundError):
        await mapi.get_namespace(TENANT, name)
    assert name not in (await mapi.list_namespaces(TENANT))["name"]


async def test_mapi_argument_checks(hcp_client: HCPClient) -> None:
    with pytest.raises(ValueError, match="name"):
        await hcp_client.mapi.create_namespace(TENANT, {"description": "no name"})
    with pytest.raises(ValueError):
        await hcp_client.mapi.export_namespaces(TENANT, [])
    with pytest.raises(ValueError):
        await hcp_client.mapi.get_namespace(TENANT, "..")
