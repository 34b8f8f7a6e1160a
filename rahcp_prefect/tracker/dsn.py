"""DSN helpers: mask the password in every DSN shown to a human, and spot it in any text.

Both libpq forms are handled: URLs (``postgresql://user:secret@host/db?password=...``) and
key/value strings (``host=h password=secret``).
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"

_KV_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_QUERY_PASSWORD = re.compile(r"([?&]password=)([^&#]*)", re.IGNORECASE)


def scheme_of(target: str) -> str | None:
    """The URL scheme of ``target`` in lower case, or None when it has none."""
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", target)
    return match.group(1).lower() if match else None


def mask_dsn(dsn: str) -> str:
    """``dsn`` with its password (in the netloc, the query or a ``password=`` pair) masked."""
    if scheme_of(dsn) is None:
        return _KV_PASSWORD.sub(lambda m: m.group(1) + MASK, dsn)
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return _mask_url_by_regex(dsn)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostinfo = netloc.rpartition("@")
        if ":" in userinfo:
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:{MASK}@{hostinfo}"
    query = _QUERY_PASSWORD.sub(lambda m: m.group(1) + MASK, "?" + parts.query)[1:]
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _mask_url_by_regex(dsn: str) -> str:
    """Fallback for URLs ``urlsplit`` rejects (e.g. a bad port): mask ``user:secret@``."""
    masked = re.sub(r"(://[^:/@]*:)[^@]*@", lambda m: m.group(1) + MASK + "@", dsn)
    return _QUERY_PASSWORD.sub(lambda m: m.group(1) + MASK, masked)


def passwords_in(dsn: str) -> list[str]:
    """Every spelling of the password found in ``dsn`` (raw and percent-decoded)."""
    found: list[str] = []
    if scheme_of(dsn) is not None:
        match = re.match(r"^[^:]+://([^@/?#]*)@", dsn) or re.match(r"^[^:]+://(.*)@", dsn)
        if match and ":" in match.group(1):
            found.append(match.group(1).split(":", 1)[1])
        found.extend(m.group(2) for m in _QUERY_PASSWORD.finditer(dsn))
    else:
        found.extend(m.group(2).strip("'") for m in _KV_PASSWORD.finditer(dsn))
    spellings = set(found) | {unquote(p) for p in found}
    return sorted((p for p in spellings if p), key=len, reverse=True)


def redact(text: str, dsn: str) -> str:
    """``text`` with every spelling of ``dsn``'s password replaced by the mask."""
    for secret in passwords_in(dsn):
        text = text.replace(secret, MASK)
    return text
