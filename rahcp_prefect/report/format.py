"""Formatting for people: counts, bytes (binary units), durations, rates, keys, artifact keys."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from urllib.parse import urlsplit, urlunsplit

from rahcp_prefect.client.sizes import format_bytes

__all__ = [
    "artifact_key",
    "format_bytes",
    "format_count",
    "format_duration",
    "format_eta",
    "format_rate",
    "plural",
    "progress_line",
    "public_url",
    "relative_key",
    "without_staging",
]

STAGING_ROOT = ".rahcp-staging/"
_STAGING_PATH = re.compile(r"^\.rahcp-staging/[^/]+/")
_STAGING_IN_TEXT = re.compile(r"[^\s'\"]*\.rahcp-staging/[^/\s'\"]+/")
ARTIFACT_KEY_LIMIT = 100


def format_count(count: int) -> str:
    """``3001`` -> ``"3,001"``."""
    return f"{int(count):,}"


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``"1 file"``, ``"3,001 files"``."""
    return f"{format_count(count)} {noun if count == 1 else (nouns or noun + 's')}"


def format_duration(seconds: float) -> str:
    """``0.42`` -> ``"0.42 s"``, ``75`` -> ``"1 min 15 s"``, ``7380`` -> ``"2 h 03 min"``."""
    seconds = max(0.0, float(seconds))
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(round(seconds))
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
    return f"{whole // 86400} d {whole % 86400 // 3600:02d} h"


def format_rate(amount: float, seconds: float, unit: str = "bytes") -> str:
    """Throughput: ``"1.3 MiB/s"`` for bytes, ``"250 files/s"`` for any other ``unit``;
    ``"-"`` when no time passed."""
    if seconds <= 0:
        return "-"
    per_second = amount / seconds
    if unit == "bytes":
        return f"{format_bytes(per_second)}/s"
    shown = f"{per_second:,.0f}" if per_second >= 10 else f"{per_second:.1f}"
    return f"{shown} {unit}/s"


def format_eta(done: float, total: float, seconds: float) -> str:
    """Time left at the rate so far (``"-"`` until there is a rate)."""
    if done <= 0 or seconds <= 0 or total <= done:
        return "-" if total > done else "0 s"
    return format_duration((total - done) * seconds / done)


def relative_key(key: str, *prefixes: str) -> str:
    """``key`` relative to the first of ``prefixes`` it starts with (e.g. the run's staging
    prefix, then the final prefix); any ``.rahcp-staging/<id>/`` is taken off regardless, so a
    person never reads a staging path."""
    for prefix in prefixes:
        if prefix and key.startswith(prefix):
            return key[len(prefix) :]
    return _STAGING_PATH.sub("", key, count=1)


def without_staging(text: str) -> str:
    """``text`` (an error message) with every ``[bucket/].rahcp-staging/<id>/`` taken out of
    the keys it names: ``Forbidden for b/.rahcp-staging/<id>/a.txt`` -> ``Forbidden for a.txt``."""
    return _STAGING_IN_TEXT.sub("", text)


#: Letters NFKD does not take apart into an ASCII letter and a mark.
_TRANSLITERATE = str.maketrans({
    "ß": "ss", "æ": "ae", "ø": "o", "œ": "oe", "đ": "d", "ð": "d", "þ": "th", "ł": "l", "ı": "i",
})


def ascii_slug_text(text: str) -> str:
    """``text`` lowercased and transliterated to ASCII where a letter has a plain form
    (``ÅÄÖ`` -> ``aao``, ``ß`` -> ``ss``); other characters are kept as they are."""
    lowered = text.lower().translate(_TRANSLITERATE)
    decomposed = unicodedata.normalize("NFKD", lowered)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def artifact_key(text: str) -> str:
    """A Prefect artifact key from ``text`` (a job name): lowercase letters, digits and
    dashes, no leading, trailing or double dash. Letters are transliterated (``scans_ÅÄÖ`` ->
    ``scans-aao-<hash>``); a name with any non-ASCII character ends with a short hash of the
    full text, so ``scans_ÅÄÖ``, ``scans_ÄÅÖ`` and ``scans_aao`` keep three histories. A name
    longer than Prefect shows well is cut and ends with that hash too."""
    cleaned = "".join(c if c.isascii() and c.isalnum() else "-" for c in ascii_slug_text(text))
    key = "-".join(part for part in cleaned.split("-") if part) or "rahcp"
    lossy = not text.isascii()
    if lossy or len(key) > ARTIFACT_KEY_LIMIT:
        digest = hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:8]
        key = key[: ARTIFACT_KEY_LIMIT - 9].rstrip("-") + "-" + digest
    return key


def public_url(url: str) -> str:
    """``url`` without user info, query or fragment: safe to show (an endpoint, a DSN)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", "")) if parts.scheme else url.split("?")[0]


def progress_line(
    phase: str,
    done: int,
    total: int,
    seconds: float,
    *,
    bytes_done: int = 0,
    bytes_total: int = 0,
    unit: str = "files",
) -> str:
    """``"commit: 1,200 of 3,001 files (40 %), 20.1 MiB of 70.8 MiB, 5.2 MiB/s, 250 files/s,
    ETA 7 s"``: one phase's progress for the progress artifact and the log."""
    share = f" ({100 * done / total:.0f} %)" if total else ""
    parts = [f"{phase}: {format_count(done)} of {format_count(total)} {unit}{share}"]
    if bytes_total:
        parts.append(f"{format_bytes(bytes_done)} of {format_bytes(bytes_total)}")
    elif bytes_done:
        parts.append(f"{format_bytes(bytes_done)} so far")
    if bytes_done:
        parts.append(format_rate(bytes_done, seconds))
    parts.append(format_rate(done, seconds, unit))
    parts.append(f"ETA {format_eta(done, total, seconds)}")
    return ", ".join(parts)
