"""Contract: POST /auth/token, bearer validation and token expiry (hcp-api.md section 1)."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest

from rahcp_prefect.testing import HCPEmulator

from .conftest import login


def _token_post(emulator: HCPEmulator, **kwargs: object) -> httpx.Response:
    return httpx.post(f"{emulator.base_url}/auth/token", **kwargs)  # type: ignore[arg-type]


def test_login_returns_bearer_jwt_with_sub_exp_tenant(hcp_emulator: HCPEmulator) -> None:
    resp = _token_post(hcp_emulator, data={"username": "alice", "password": "pw", "tenant": "dev-ai"})
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"access_token", "token_type"}
    assert body["token_type"] == "bearer"
    claims = jwt.decode(body["access_token"], hcp_emulator.secret_key, algorithms=["HS256"])
    assert claims["sub"] == "alice"
    assert claims["tenant"] == "dev-ai"
    assert "pwd" not in claims
    assert abs(claims["exp"] - (time.time() + 28800)) < 60


def test_login_accepts_multipart_form(hcp_emulator: HCPEmulator) -> None:
    resp = _token_post(
        hcp_emulator,
        data={"username": "bob", "password": "pw"},
        files={"ignored": ("a.txt", b"file part is ignored")},
    )
    assert resp.status_code == 200
    claims = jwt.decode(resp.json()["access_token"], hcp_emulator.secret_key, algorithms=["HS256"])
    assert claims["sub"] == "bob"
    assert "tenant" not in claims


def test_json_body_is_422_with_both_fields_missing(hcp_emulator: HCPEmulator) -> None:
    resp = _token_post(hcp_emulator, json={"username": "alice", "password": "pw"})
    assert resp.status_code == 422
    detail = resp.json()["detail"]
    assert [(e["type"], e["loc"], e["msg"]) for e in detail] == [
        ("missing", ["body", "username"], "Field required"),
        ("missing", ["body", "password"], "Field required"),
    ]


def test_empty_password_is_field_required(hcp_emulator: HCPEmulator) -> None:
    resp = _token_post(hcp_emulator, data={"username": "alice", "password": ""})
    assert resp.status_code == 422
    assert [(e["loc"], e["msg"]) for e in resp.json()["detail"]] == [
        (["body", "password"], "Field required")
    ]


def test_grant_type_must_be_password(hcp_emulator: HCPEmulator) -> None:
    ok = _token_post(
        hcp_emulator,
        data={"username": "a", "password": "p", "grant_type": "password", "scope": "x", "client_id": "c"},
    )
    assert ok.status_code == 200
    bad = _token_post(hcp_emulator, data={"username": "a", "password": "p", "grant_type": "client"})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "grant_type"]


@pytest.mark.parametrize(
    ("username", "tenant", "sub", "claim"),
    [
        ("dev-ai/alice", None, "alice", "dev-ai"),
        ("x/alice", "t1", "x/alice", "t1"),
        ("/alice", None, "alice", None),
        ("alice", "  dev-ai  ", "alice", "dev-ai"),
        ("alice", "   ", "alice", None),
        ("a/b/c", None, "b/c", "a"),
        ("alice", None, "alice", None),
    ],
)
def test_tenant_resolution(
    hcp_emulator: HCPEmulator, username: str, tenant: str | None, sub: str, claim: str | None
) -> None:
    form = {"username": username, "password": "pw"}
    if tenant is not None:
        form["tenant"] = tenant
    resp = _token_post(hcp_emulator, data=form)
    assert resp.status_code == 200, resp.text
    claims = jwt.decode(resp.json()["access_token"], hcp_emulator.secret_key, algorithms=["HS256"])
    assert claims["sub"] == sub
    assert claims.get("tenant") == claim


@pytest.mark.parametrize(
    "form",
    [
        {"username": "alice", "tenant": "bad_tenant"},
        {"username": "alice", "tenant": "a.b"},
        {"username": "alice", "tenant": "-dev"},
        {"username": "alice", "tenant": "dev-"},
        {"username": "bad.tenant/alice"},
    ],
)
def test_invalid_tenant_is_422(hcp_emulator: HCPEmulator, form: dict[str, str]) -> None:
    resp = _token_post(hcp_emulator, data={**form, "password": "pw"})
    assert resp.status_code == 422
    assert resp.json() == {"detail": "Invalid tenant name"}


def test_configured_users_check_the_password(hcp_emulator: HCPEmulator) -> None:
    strict = HCPEmulator(s3_endpoint=hcp_emulator.s3_endpoint, users={"tester": "right"})
    with strict:
        wrong = _token_post(strict, data={"username": "tester", "password": "wrong"})
        assert wrong.status_code == 401
        assert wrong.json() == {"detail": "Invalid username or password"}
        unknown = _token_post(strict, data={"username": "nobody", "password": "right"})
        assert unknown.status_code == 401
        assert _token_post(strict, data={"username": "tester", "password": "right"}).status_code == 200
        split = _token_post(strict, data={"username": "dev-ai/tester", "password": "right"})
        assert split.status_code == 200


def _get_buckets(emulator: HCPEmulator, headers: dict[str, str]) -> httpx.Response:
    return httpx.get(f"{emulator.base_url}/buckets", headers=headers)


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "Not authenticated"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "Not authenticated"),
        ({"Authorization": "Bearer"}, "Not authenticated"),
        ({"Authorization": "Bearer not.a.jwt"}, "Invalid token"),
        ({"Authorization": "Bearer " + jwt.encode({"sub": "a"}, "another-key-that-is-at-least-32-bytes-long", algorithm="HS256")}, "Invalid token"),
    ],
)
def test_bearer_errors(hcp_emulator: HCPEmulator, headers: dict[str, str], detail: str) -> None:
    resp = _get_buckets(hcp_emulator, headers)
    assert resp.status_code == 401
    assert resp.json() == {"detail": detail}
    assert resp.headers["www-authenticate"] == "Bearer"


def test_expired_and_subjectless_tokens(hcp_emulator: HCPEmulator) -> None:
    expired = hcp_emulator.issue_token("alice", ttl=-5)
    resp = _get_buckets(hcp_emulator, {"Authorization": f"Bearer {expired}"})
    assert (resp.status_code, resp.json()) == (401, {"detail": "Token has expired"})
    assert resp.headers["www-authenticate"] == "Bearer"

    no_sub = jwt.encode({"exp": int(time.time()) + 60}, hcp_emulator.secret_key, algorithm="HS256")
    resp = _get_buckets(hcp_emulator, {"Authorization": f"Bearer {no_sub}"})
    assert (resp.status_code, resp.json()) == (401, {"detail": "Invalid token: no subject"})


def test_token_without_exp_never_expires_and_scheme_is_case_insensitive(
    hcp_emulator: HCPEmulator,
) -> None:
    forever = jwt.encode({"sub": "alice"}, hcp_emulator.secret_key, algorithm="HS256")
    assert _get_buckets(hcp_emulator, {"Authorization": f"bearer {forever}"}).status_code == 200
    assert _get_buckets(hcp_emulator, {"Authorization": f"BEARER {forever}"}).status_code == 200


def test_token_ttl_expires_a_login_token(hcp_emulator: HCPEmulator) -> None:
    short = HCPEmulator(s3_endpoint=hcp_emulator.s3_endpoint, token_ttl_seconds=1)
    with short:
        token = login(short.base_url)
        headers = {"Authorization": f"Bearer {token}"}
        assert _get_buckets(short, headers).status_code == 200
        claims = jwt.decode(token, short.secret_key, algorithms=["HS256"])
        time.sleep(max(0.0, claims["exp"] - time.time()) + 0.2)
        resp = _get_buckets(short, headers)
        assert (resp.status_code, resp.json()) == (401, {"detail": "Token has expired"})


def test_request_id_is_echoed_or_generated(hcp_emulator: HCPEmulator) -> None:
    echoed = httpx.get(f"{hcp_emulator.root_url}/liveness", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    fresh = httpx.get(f"{hcp_emulator.base_url}/buckets")  # even on a 401
    assert fresh.status_code == 401
    assert len(fresh.headers["x-request-id"]) == 32
    int(fresh.headers["x-request-id"], 16)


def test_public_routes(hcp_emulator: HCPEmulator) -> None:
    root = hcp_emulator.root_url
    assert httpx.get(f"{root}/liveness").json() == {"status": "ok"}
    assert httpx.get(f"{root}/health").json() == {"status": "ok", "cache": "disabled"}
    ready = httpx.get(f"{root}/readiness")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert httpx.get(f"{hcp_emulator.base_url}/health").status_code == 404
    caps = httpx.get(f"{hcp_emulator.base_url}/capabilities")
    assert caps.json() == {"mapi_enabled": True, "storage_backend": "hcp"}
