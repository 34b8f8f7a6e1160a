"""The files' modification times in the archive: ``rahcp-mtimes.txt`` beside the manifest.

The API's presign carries no headers, so a file's modification time cannot ride on its object
(rclone's ``X-Amz-Meta-Mtime``); it is kept with the job instead, in a BagIt tag file (RFC 8493,
section 2.2.4: tag files other than the manifests are allowed) at the root of the final prefix.
One line per file, ``<mtime in ns since the epoch>  <path>``, the path relative to the prefix and
encoded as in ``manifest-sha256.txt`` (``%``, CR, LF percent-encoded), sorted by path, UTF-8.
The commit writes it from the tracker's records (each file's mtime as sent) after the manifest
and reads it back; a download restores each file's time from it (``os.utime``); ``bulk-verify``
checks that it lists exactly the manifest's files.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from rahcp_prefect.client import HCPClient
from rahcp_prefect.job.manifest import (
    MANIFEST_NAME,
    MTIMES_NAME,
    ExpectedLines,
    ManifestError,
    add_once,
    decode_path,
    encode_path,
    is_tag_path,
    read_back,
    read_tag_file,
    tag_lines,
    write_tag_file,
)

TAG_FILES = frozenset({MANIFEST_NAME, MTIMES_NAME})
"""The job's own files at the root of a final prefix (never payload of the job)."""

_LINE = re.compile(r"(-?[0-9]{1,20})  (.+)")


def mtimes_key(final_prefix: str) -> str:
    """The tag file's key under ``final_prefix``."""
    return final_prefix + MTIMES_NAME


def mtime_line(path: str, mtime_ns: int) -> str:
    """One line of the tag file: ``<mtime_ns>  <encoded path>``."""
    return f"{int(mtime_ns)}  {encode_path(path)}\n"


def render_mtimes(mtimes: Mapping[str, int]) -> bytes:
    """The tag file of ``{path relative to the prefix: mtime_ns}``, sorted by path."""
    return "".join(mtime_line(path, mtimes[path]) for path in sorted(mtimes)).encode("utf-8")


def parse_mtimes(data: bytes, where: str = MTIMES_NAME) -> dict[str, int]:
    """``{path: mtime_ns}`` of a tag file; ``ManifestError`` names the first bad line."""
    out: dict[str, int] = {}
    for number, line in tag_lines(data, where):
        path, mtime = parse_mtime_line(line, where, number)
        add_once(out, path, mtime, where, number)
    return out


def parse_mtime_line(line: str, where: str, number: int) -> tuple[str, int]:
    """``(path, mtime_ns)`` of one line of the tag file; ``ManifestError`` names a bad one."""
    match = _LINE.fullmatch(line)
    if match is None:
        raise ManifestError(f"{where} line {number} is not '<mtime_ns>  <path>': {line[:120]!r}")
    return decode_path(match.group(2)), int(match.group(1))


def plan_mtimes(records: Iterable[tuple[str, int, int | None]], staging_prefix: str) -> dict[str, int]:
    """``{path relative to the prefix: mtime_ns}`` of the job's done records (the tracker's
    ``iter_done(staging_prefix)``); files recorded without a time and the job's own tag files
    are left out (a download then leaves such a file with the time it was written)."""
    out: dict[str, int] = {}
    for key, _size, mtime_ns in records:
        relative = key[len(staging_prefix):]
        if mtime_ns is not None and key.startswith(staging_prefix) and not is_tag_path(relative):
            out[relative] = mtime_ns
    return out


async def write_mtimes(
    client: HCPClient, bucket: str, final_prefix: str, mtimes: Mapping[str, int], exists: bool = False
) -> str:
    """Write (or replace: ``write_tag_file``) the tag file under ``final_prefix``; returns its key."""
    return await write_tag_file(client, bucket, mtimes_key(final_prefix), render_mtimes(mtimes), exists)


async def add_mtimes(client: HCPClient, bucket: str, prefix: str, mtimes: Mapping[str, int]) -> str | None:
    """Add ``mtimes`` (path relative to ``prefix`` -> ns) to the tag file under ``prefix``,
    keeping the times of files it already lists (a folder copy adds to a prefix; it has no job
    that knows all of it). Nothing is written when ``mtimes`` is empty; returns the key written."""
    if not mtimes:
        return None
    try:
        found = await read_mtimes(client, bucket, prefix)
        exists = found is not None
    except ManifestError:
        found, exists = None, True  # an unreadable tag file is replaced by a readable one
    merged = {key[len(prefix):]: mtime for key, mtime in (found or {}).items()}
    merged.update(mtimes)
    return await write_mtimes(client, bucket, prefix, merged, exists)


async def read_mtimes(client: HCPClient, bucket: str, prefix: str) -> dict[str, int] | None:
    """``{key: mtime_ns}`` (full keys) from the tag file under ``prefix``; None when there is
    none (a prefix another tool wrote, or committed by an older release)."""
    return await read_tag_file(client, bucket, prefix, MTIMES_NAME, parse_mtimes)


async def check_mtimes(
    client: HCPClient, bucket: str, final_prefix: str, written: Mapping[str, int], listed: Iterable[str]
) -> list[str]:
    """Read the tag file back: it must list exactly ``written`` (what the commit wrote) and
    only paths the manifest lists (``listed``: paths relative to the prefix). Problems, none: ok."""
    found, unread = await read_back(client, bucket, final_prefix, MTIMES_NAME, parse_mtimes)
    if unread:
        return unread
    relative = {key[len(final_prefix):]: mtime for key, mtime in found.items()}
    problems = [f"{path}: {MTIMES_NAME} differs from what the commit wrote" for path in sorted(set(written) ^ set(relative))]
    problems += [
        f"{path}: {MTIMES_NAME} says {relative[path]}, the job recorded {written[path]}"
        for path in sorted(set(written) & set(relative))
        if relative[path] != written[path]
    ]
    return problems + mtimes_outside_manifest(relative, listed, f"{bucket}/{final_prefix}")


def mtimes_outside_manifest(mtimes: Mapping[str, int], manifest_paths: Iterable[str], where: str) -> list[str]:
    """Paths the tag file lists that the manifest does not (a tag file of another commit)."""
    listed = set(manifest_paths)
    return [f"{where}{path}: in {MTIMES_NAME}, not in the manifest" for path in sorted(set(mtimes) - listed)]


ExpectedMtimes = ExpectedLines[int]
"""A prefix's times: full key -> mtime_ns."""
