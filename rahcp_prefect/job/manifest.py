"""The job's manifest in the archive: ``manifest-sha256.txt`` at the root of the final prefix.

BagIt style (RFC 8493, section 2.1.3): one line per file, ``<sha256 hex>  <path>`` with the path
relative to the prefix, two spaces between, ``%``, CR and LF in paths percent-encoded (``%25``,
``%0D``, ``%0A``), lines sorted by path, UTF-8, LF line ends. It lists every file the job holds
there and is written by the commit after the last object is in place, so its presence means the
commit finished; each later commit of the job writes it again. A later reader (a download,
``bulk-verify``, any BagIt tool) checks the bytes against it.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from rahcp_prefect.client import HCPClient, NotFoundError
from rahcp_prefect.errors import RahcpError

T = TypeVar("T")

MANIFEST_NAME = "manifest-sha256.txt"
MTIMES_NAME = "rahcp-mtimes.txt"
"""The tag file of the files' modification times (``mtimes.py``), beside the manifest."""

RAHCP_DIR = ".rahcp/"
"""The job's own folder under a final prefix (its fixity records, ``records.py``)."""

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_LINE = re.compile(r"([0-9a-fA-F]{64})[ \t]+(.+)")
_ENCODED = re.compile(r"%(25|0[dD]|0[aA])")
_DECODED = {"25": "%", "0d": "\r", "0a": "\n"}


class ManifestError(RahcpError, ValueError):
    """A manifest that cannot be read: the message names the object and the line."""


def encode_path(path: str) -> str:
    """A path as a manifest line holds it: ``%`` first, then CR and LF, percent-encoded."""
    return path.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def decode_path(text: str) -> str:
    """The path of a manifest line (``%25``, ``%0D``, ``%0A`` decoded, in one pass)."""
    return _ENCODED.sub(lambda match: _DECODED[match.group(1).lower()], text)


def is_tag_path(relative: str) -> bool:
    """Whether a path relative to a final prefix is the job's own (a root tag file, a record):
    a source file of that name is shadowed by it, never payload of the job."""
    return relative in (MANIFEST_NAME, MTIMES_NAME) or relative.startswith(RAHCP_DIR)


def manifest_key(final_prefix: str) -> str:
    """The manifest's key under ``final_prefix``."""
    return final_prefix + MANIFEST_NAME


def manifest_line(path: str, sha256: str) -> str:
    """One manifest line: ``<sha256>  <encoded path>``; ``ManifestError`` for a bad digest."""
    if not _SHA256.fullmatch(sha256):
        raise ManifestError(f"not a SHA-256 for {path!r}: {sha256!r}")
    return f"{sha256.lower()}  {encode_path(path)}\n"


def render_manifest(digests: Mapping[str, str]) -> bytes:
    """The manifest of ``{path relative to the prefix: sha256 hex}``, sorted by path."""
    return "".join(manifest_line(path, digests[path]) for path in sorted(digests)).encode("utf-8")


def tag_lines(data: bytes, where: str) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of every non-empty line of a tag file in memory."""
    return numbered_lines(io.BytesIO(data), where)


def numbered_lines(stream: Iterable[bytes], where: str) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of every non-empty line of a tag file read line by line (UTF-8,
    LF or CRLF line ends): a file of any size in flat memory; ``ManifestError`` when it is not
    UTF-8."""
    offset = 0
    for number, raw in enumerate(stream, 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ManifestError(f"{where} is not UTF-8 ({exc.reason} at byte {offset + exc.start})") from None
        offset += len(raw)
        line = line.removesuffix("\n").removesuffix("\r")
        if line:
            yield number, line


def add_once(out: dict[str, Any], path: str, value: Any, where: str, number: int) -> None:
    """``out[path] = value``; ``ManifestError`` when a tag file lists ``path`` twice."""
    if path in out:
        raise ManifestError(f"{where} line {number} lists {path!r} twice")
    out[path] = value


def parse_manifest(data: bytes, where: str = MANIFEST_NAME) -> dict[str, str]:
    """``{path: sha256 hex}`` of a manifest; ``ManifestError`` names the first bad line."""
    out: dict[str, str] = {}
    for number, line in tag_lines(data, where):
        path, digest = parse_manifest_line(line, where, number)
        add_once(out, path, digest, where, number)
    return out


def parse_manifest_line(line: str, where: str, number: int) -> tuple[str, str]:
    """``(path, sha256 hex)`` of one manifest line; ``ManifestError`` names a bad one."""
    if line[64:66] == "  " and _SHA256.fullmatch(line[:64]):  # our own form: the exact path
        digest, path = line[:64], line[66:]
    else:
        match = _LINE.fullmatch(line)
        if match is None:
            raise ManifestError(f"{where} line {number} is not '<sha256>  <path>': {line[:120]!r}")
        digest, path = match.group(1), match.group(2)
    return decode_path(path), digest.lower()


async def write_manifest(
    client: HCPClient, bucket: str, final_prefix: str, digests: Mapping[str, str], exists: bool = False
) -> str:
    """Write (or replace) the manifest of ``digests`` under ``final_prefix``; returns its key."""
    return await write_tag_file(client, bucket, manifest_key(final_prefix), render_manifest(digests), exists)


async def write_tag_file(client: HCPClient, bucket: str, key: str, body: bytes | Path, exists: bool = False) -> str:
    """Write (or replace) one of the job's tag files (the manifest, the times: bytes, or a file
    on local disk for one of any size); returns its key.

    ``S3Ops.write``, whatever the namespace allows; ``exists`` (the final listing showed one):
    the old file is deleted first, sparing the PUT a namespace without versioning or overwrite
    would refuse (409). A run killed between the two leaves the job ``committing`` and its next
    run writes the file again. ``RetentionError`` when the file there is retained or held."""
    await client.s3.write(bucket, key, body, exists=exists)
    return key


async def read_tag_file(
    client: HCPClient, bucket: str, prefix: str, name: str, parse: Callable[[bytes, str], dict[str, T]]
) -> dict[str, T] | None:
    """``{full key: value}`` of the tag file ``name`` under ``prefix`` (``parse`` reads it),
    or None when there is none; ``ManifestError`` when it cannot be read."""
    key = prefix + name
    try:
        data = await client.s3.download_bytes(bucket, key)
    except NotFoundError:
        return None
    return {prefix + path: value for path, value in parse(data, f"{bucket}/{key}").items()}


async def read_back(
    client: HCPClient, bucket: str, prefix: str, name: str, parse: Callable[[bytes, str], dict[str, T]]
) -> tuple[dict[str, T], list[str]]:
    """A tag file the final check reads back: ``(its lines, [])``, or ``({}, [the problem])``
    when it is missing or cannot be read."""
    try:
        found = await read_tag_file(client, bucket, prefix, name, parse)
    except ManifestError as exc:
        return {}, [str(exc)]
    if found is None:
        return {}, [f"{bucket}/{prefix}{name}: missing"]
    return found, []


async def read_manifest(client: HCPClient, bucket: str, prefix: str) -> dict[str, str] | None:
    """``{key: sha256}`` (full keys) from the manifest under ``prefix``, or None when there is
    none; ``ManifestError`` when it cannot be read."""
    return await read_tag_file(client, bucket, prefix, MANIFEST_NAME, parse_manifest)


@dataclass
class ExpectedLines(Generic[T]):
    """A prefix's tag file as full keys -> value (a manifest's SHA-256, ``rahcp-mtimes.txt``'s
    ns); ``lines`` is None when the prefix has no such file."""

    lines: dict[str, T] | None

    def lines_of(self, entries: Iterable[tuple[Any, ...]]) -> dict[str, T] | None:
        """The lines for a batch of ``(key, size[, etag])`` (None without the file)."""
        if self.lines is None:
            return None
        return {entry[0]: self.lines[entry[0]] for entry in entries if entry[0] in self.lines}


ExpectedDigests = ExpectedLines[str]
"""A prefix's manifest: full key -> SHA-256."""


async def check_manifest(
    client: HCPClient, bucket: str, final_prefix: str, listed: Mapping[str, int], digests: Mapping[str, str]
) -> list[str]:
    """The final check's manifest part: the manifest under ``final_prefix`` must exist, list
    exactly ``digests`` (path -> sha256, what the commit wrote from the tracker) and name only
    objects the final prefix holds (``listed``: key -> size). Returns the problems (none: ok)."""
    found, unread = await read_back(client, bucket, final_prefix, MANIFEST_NAME, parse_manifest)
    if unread:
        return unread
    want = {final_prefix + path: sha for path, sha in digests.items()}
    problems = [f"{key}: not in the manifest" for key in sorted(want.keys() - found.keys())]
    problems += [f"{key}: in the manifest, not in the job" for key in sorted(found.keys() - want.keys())]
    problems += [
        f"{key}: manifest says {found[key]}, the job recorded {want[key]}"
        for key in sorted(want.keys() & found.keys())
        if found[key] != want[key]
    ]
    problems += [f"{key}: in the manifest, not in {bucket}/{final_prefix}" for key in sorted(found) if key not in listed]
    return problems
