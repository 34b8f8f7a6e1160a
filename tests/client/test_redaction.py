"""Redaction: secrets never survive into log or exception text."""

from __future__ import annotations

import json

from rahcp_prefect.client.redaction import (
    REDACTED,
    is_sensitive,
    redact_body,
    redact_json,
    redact_text,
    strip_query,
)

SIGNED = (
    "http://127.0.0.1:9000/bucket/dir/a%20b.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAEXAMPLE%2F20260101%2Fus-east-1%2Fs3%2Faws4_request"
    "&X-Amz-Date=20260101T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
    "&X-Amz-Signature=deadbeefcafebabe0123456789abcdef"
)
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1IiwicHdkIjoicCJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


def test_sensitive_field_names() -> None:
    for name in ("password", "Token", "access_token", "SECRET", "authorization", "client_secret",
                 "secret_access_key", "pwd", "refresh_token"):
        assert is_sensitive(name), name
    for name in ("Key", "bucket", "detail", "name", "Size"):
        assert not is_sensitive(name), name


def test_redact_json_nested() -> None:
    body = {
        "user": "alice",
        "password": "hunter22",
        "nested": [{"access_token": "abc123", "ok": 1}, {"Authorization": "Bearer x"}],
        "secret": {"deep": "value"},
    }
    clean = redact_json(body)
    assert clean["user"] == "alice"
    assert clean["password"] == REDACTED
    assert clean["nested"][0] == {"access_token": REDACTED, "ok": 1}
    assert clean["nested"][1]["Authorization"] == REDACTED
    assert clean["secret"] == REDACTED
    assert "hunter22" not in json.dumps(clean) and "abc123" not in json.dumps(clean)


def test_strip_query_drops_signature() -> None:
    assert strip_query(SIGNED) == "http://127.0.0.1:9000/bucket/dir/a%20b.txt"


def test_redact_text_masks_urls_fields_bearer_and_jwt() -> None:
    text = (
        f'failed {SIGNED} with {{"password": "hunter22", "token": "tok-value-1", "n": 3}} '
        f"password=hunter22&x=1 Authorization: Bearer abcdefghijklmnop and {JWT}"
    )
    clean = redact_text(text)
    for secret in ("deadbeefcafebabe", "AKIAEXAMPLE", "hunter22", "tok-value-1", "abcdefghijklmnop", JWT):
        assert secret not in clean, secret
    assert "http://127.0.0.1:9000/bucket/dir/a%20b.txt" in clean
    assert '"n": 3' in clean


def test_redact_text_bare_signature_params() -> None:
    clean = redact_text("query was X-Amz-Signature=abcdef0123&X-Amz-Credential=AKIA%2Fx and Signature=zzz999")
    assert "abcdef0123" not in clean and "AKIA" not in clean and "zzz999" not in clean


def test_redact_text_known_secrets_anywhere() -> None:
    clean = redact_text("user alice with s3cr3t-pass in prose", secrets=("s3cr3t-pass", None, ""))
    assert clean == f"user alice with {REDACTED} in prose"


def test_redact_body_uses_detail_and_cuts_after_redacting() -> None:
    body = json.dumps({"detail": "x" * 190 + ' "password": "p4ssw0rd-long-value"'})
    message = redact_body(body)
    assert len(message) <= 200
    assert "p4ssw0rd" not in message
    # a non-JSON body is redacted and cut as text
    assert redact_body("a" * 500) == "a" * 200
    # a 422 list detail keeps its content but loses secrets
    listed = redact_body(json.dumps({"detail": [{"loc": ["body", "password"], "input": {"password": "pw-9999"}}]}))
    assert "pw-9999" not in listed and "loc" in listed


def test_redact_body_other_json_redacts_fields() -> None:
    message = redact_body(json.dumps({"error": "bad", "access_token": "tok-abc-123"}))
    assert "tok-abc-123" not in message and "bad" in message
