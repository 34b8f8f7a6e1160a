"""Contract: MAPI namespace routes over the in-memory store (hcp-api.md section 5)."""

from __future__ import annotations

import uuid

import httpx

from rahcp_prefect.testing import HCPEmulator
from rahcp_prefect.testing.mapi_store import NAMESPACE_FIELDS

from .conftest import ISO_Z, login


def _tenant() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def test_create_get_list_head(api: httpx.Client) -> None:
    t = _tenant()
    created = api.put(
        f"/mapi/tenants/{t}/namespaces",
        json={"name": "ns1", "description": "d", "hashScheme": "SHA-256", "hardQuota": "100 GB", "bogusKey": 1},
    )
    assert (created.status_code, created.json()) == (201, {"status": "created", "name": "ns1"})
    again = api.put(f"/mapi/tenants/{t}/namespaces", json={"name": "ns1"})
    assert again.status_code == 409
    assert again.json()["detail"].startswith("namespace 'ns1': ")
    api.put(f"/mapi/tenants/{t}/namespaces", json={"name": "ns0"})

    assert api.get(f"/mapi/tenants/{t}/namespaces", params={"verbose": "true"}).json() == {"name": ["ns0", "ns1"]}
    assert api.get(f"/mapi/tenants/{t}/namespaces", params={"offset": 1, "count": 1}).json() == {"name": ["ns1"]}

    ns = api.get(f"/mapi/tenants/{t}/namespaces/ns1", params={"verbose": "true"}).json()
    assert set(NAMESPACE_FIELDS) <= set(ns)
    assert (ns["name"], ns["description"], ns["hashScheme"], ns["hardQuota"]) == ("ns1", "d", "SHA-256", "100 GB")
    assert ns["softQuota"] is None and ns["tags"] is None and ns["versioningSettings"] is None
    assert ns["id"] and ISO_Z.match(ns["creationTime"])
    assert "bogusKey" not in ns

    assert api.head(f"/mapi/tenants/{t}/namespaces/ns1").status_code == 200
    assert api.head(f"/mapi/tenants/{t}/namespaces/nope").status_code == 404
    missing = api.get(f"/mapi/tenants/{t}/namespaces/nope")
    assert (missing.status_code, missing.json()) == (404, {"detail": "namespace 'nope' not found"})


def test_create_validates_name_and_enums(api: httpx.Client) -> None:
    t = _tenant()
    assert api.put(f"/mapi/tenants/{t}/namespaces", json={"description": "no name"}).status_code == 422
    bad = api.put(f"/mapi/tenants/{t}/namespaces", json={"name": "x", "hashScheme": "CRC32"})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "hashScheme"]
    assert api.put(f"/mapi/tenants/{t}/namespaces", json={"name": "x", "optimizedFor": "FAST"}).status_code == 422
    assert api.put(f"/mapi/tenants/{t}/namespaces", json={"name": "x", "retentionType": "S3"}).status_code == 201


def test_update_drops_immutable_fields(api: httpx.Client) -> None:
    t = _tenant()
    api.put(f"/mapi/tenants/{t}/namespaces", json={"name": "ns", "hashScheme": "MD5", "softQuota": 80})
    resp = api.post(
        f"/mapi/tenants/{t}/namespaces/ns",
        params={"resetMQECheckpoint": "true"},
        json={"description": "new", "softQuota": 70, "hashScheme": "SHA-512", "directoryUsage": "BALANCED"},
    )
    assert (resp.status_code, resp.json()) == (200, {"status": "updated"})
    ns = api.get(f"/mapi/tenants/{t}/namespaces/ns").json()
    assert (ns["description"], ns["softQuota"], ns["hashScheme"], ns["directoryUsage"]) == ("new", 70, "MD5", None)
    assert api.post(f"/mapi/tenants/{t}/namespaces/ghost", json={"description": "x"}).status_code == 404


def test_delete_then_404(api: httpx.Client) -> None:
    t = _tenant()
    api.put(f"/mapi/tenants/{t}/namespaces", json={"name": "gone"})
    resp = api.delete(f"/mapi/tenants/{t}/namespaces/gone")
    assert (resp.status_code, resp.json()) == (200, {"status": "deleted"})
    assert api.delete(f"/mapi/tenants/{t}/namespaces/gone").status_code == 404
    assert api.get(f"/mapi/tenants/{t}/namespaces").json() == {"name": []}


def test_export_one_and_many(api: httpx.Client) -> None:
    t = _tenant()
    api.put(f"/mapi/tenants/{t}/namespaces", json={"name": "a", "description": "A", "versioningSettings": {"enabled": True}})
    api.put(f"/mapi/tenants/{t}/namespaces", json={"name": "b"})

    one = api.get(f"/mapi/tenants/{t}/namespaces/a/export").json()
    assert set(one) == {"version", "exportedAt", "sourceTenant", "namespaces"}
    assert (one["version"], one["sourceTenant"]) == ("1.0", t)
    assert ISO_Z.match(one["exportedAt"])
    (cfg,) = one["namespaces"]
    assert cfg["name"] == "a" and cfg["description"] == "A"
    assert cfg["versioning"] == {"enabled": True}
    assert not {"id", "creationTime", "fullyQualifiedName"} & set(cfg)

    many = api.get(f"/mapi/tenants/{t}/namespaces/export", params={"names": "a,b,missing"}).json()
    assert [c["name"] for c in many["namespaces"]] == ["a", "b", "missing"]
    assert many["namespaces"][2] == {"name": "missing"}
    # The literal /export route is not shadowed by /{ns}: without names it is a validation error.
    no_names = api.get(f"/mapi/tenants/{t}/namespaces/export")
    assert no_names.status_code == 422
    assert no_names.json()["detail"][0]["loc"] == ["query", "names"]


def test_versioning_settings_routes(api: httpx.Client) -> None:
    t = _tenant()
    api.put(f"/mapi/tenants/{t}/namespaces", json={"name": "v"})
    assert api.get(f"/mapi/tenants/{t}/namespaces/v/versioningSettings").json() == {"enabled": False}
    api.post(f"/mapi/tenants/{t}/namespaces/v/versioningSettings", json={"enabled": True, "prune": True})
    assert api.get(f"/mapi/tenants/{t}/namespaces/v/versioningSettings").json() == {"enabled": True, "prune": True}
    api.delete(f"/mapi/tenants/{t}/namespaces/v/versioningSettings")
    assert api.get(f"/mapi/tenants/{t}/namespaces/v/versioningSettings").json() == {"enabled": False}


def test_mapi_requires_a_token(hcp_emulator: HCPEmulator) -> None:
    resp = httpx.get(f"{hcp_emulator.base_url}/mapi/tenants/t/namespaces")
    assert (resp.status_code, resp.json()) == (401, {"detail": "Not authenticated"})


def test_mapi_disabled_is_plain_404(hcp_emulator: HCPEmulator) -> None:
    with HCPEmulator(s3_endpoint=hcp_emulator.s3_endpoint, mapi_enabled=False) as emu:
        headers = {"Authorization": f"Bearer {login(emu.base_url)}"}
        for method, path in (
            ("GET", "/mapi/tenants/t/namespaces"),
            ("PUT", "/mapi/tenants/t/namespaces"),
            ("GET", "/mapi/tenants/t/namespaces/x"),
            ("GET", "/mapi/tenants/t/namespaces/export?names=a"),
        ):
            resp = httpx.request(method, f"{emu.base_url}{path}", headers=headers, json={"name": "x"})
            assert (resp.status_code, resp.json()) == (404, {"detail": "Not Found"}), path
        caps = httpx.get(f"{emu.base_url}/capabilities").json()
        assert caps["mapi_enabled"] is False
