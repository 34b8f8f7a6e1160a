"""Keep secrets out of log lines and exception texts.

Three kinds of secret can reach a message: the password (also inside the JWT's ``pwd`` claim),
the bearer token, and presigned URL signatures. JSON fields with a secret-looking name are
replaced by ``[REDACTED]``, URL query strings are dropped, bearer values and JWTs are masked,
and any literal secret the caller knows (the live password and token) is masked wherever it
appears.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REDACTED = "[REDACTED]"

SENSITIVE_FIELDS = frozenset({"password", "token", "access_token", "secret", "authorization"})
"""Field names always redacted (compared case-insensitively)."""

_SENSITIVE_PARTS = ("password", "passwd", "secret", "authorization", "credential", "signature")

_JSON_FIELD = re.compile(
    r'("(?P<name>[^"\\]{1,64})"\s*:\s*)("(?:[^"\\]|\\.)*"|[^,}\]\s]+)',
)
_FORM_FIELD = re.compile(
    r"(?i)\b(?P<name>password|passwd|token|access_token|secret|client_secret|authorization|pwd)"
    r"=[^&\s]+"
)
_URL_QUERY = re.compile(r"(?P<base>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s?#\"'<>]*)\?[^\s\"'<>]*")
_AMZ_PARAM = re.compile(r"(?i)(X-Amz-(?:Signature|Credential|Security-Token)|Signature)=[^&\s\"']+")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=:-]{8,}")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")


def is_sensitive(name: str) -> bool:
    """True for a field name that holds a secret (password, token, secret, authorization...)."""
    lowered = name.lower()
    if lowered in SENSITIVE_FIELDS or lowered == "pwd" or lowered.endswith("_token"):
        return True
    return any(part in lowered for part in _SENSITIVE_PARTS)


def redact_json(value: Any) -> Any:
    """Return a copy of a decoded JSON value with every sensitive field set to ``[REDACTED]``."""
    if isinstance(value, dict):
        return {
            key: REDACTED if isinstance(key, str) and is_sensitive(key) else redact_json(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact_json(item) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def strip_query(url: str) -> str:
    """``scheme://host/path`` of a URL: the query (signature, credential) and fragment go."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _URL_QUERY.sub(r"\g<base>", url.split("?", 1)[0])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def redact_text(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Mask secrets in free text: JSON fields, form fields, URL queries, bearer values, JWTs.

    ``secrets`` are literal values (the live password and token) masked wherever they appear.
    """
    if not text:
        return text
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    text = _JSON_FIELD.sub(_mask_json_field, text)
    text = _FORM_FIELD.sub(lambda m: f"{m.group('name')}={REDACTED}", text)
    text = _URL_QUERY.sub(r"\g<base>", text)
    text = _AMZ_PARAM.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return _JWT.sub(REDACTED, text)


def redact_body(body: str, secrets: Iterable[str | None] = (), limit: int = 200) -> str:
    """The ``detail`` of an API error body (or the raw text), redacted, cut to ``limit`` chars.

    Redaction runs on the whole text before cutting, so a cut never leaves half a secret.
    """
    text = body
    try:
        decoded = json.loads(body)
    except (ValueError, TypeError):
        decoded = None
    if isinstance(decoded, dict) and "detail" in decoded:
        detail = redact_json(decoded["detail"])
        text = detail if isinstance(detail, str) else json.dumps(detail, ensure_ascii=False)
    elif decoded is not None:
        text = json.dumps(redact_json(decoded), ensure_ascii=False)
    text = redact_text(text, secrets)
    return text[:limit]


def _mask_json_field(match: re.Match[str]) -> str:
    if is_sensitive(match.group("name")):
        return f'{match.group(1)}"{REDACTED}"'
    return match.group(0)
