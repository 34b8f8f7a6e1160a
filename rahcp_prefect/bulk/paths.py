"""Keys to local paths and back, refusing anything that could land outside the target folder.

Download keys come from a bucket anyone may have written to: ``a/../../etc/x``, ``/abs`` or a
Windows drive must never become a path outside ``dest_dir``. A key is split on ``/`` (and on
``\\`` on Windows) and refused if any segment is empty, ``.`` or ``..``; the segments are then
opened one by one without following a link (``client.safe_paths``), so a symlink inside
``dest_dir`` cannot lead out of it either.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable

from rahcp_prefect.errors import RahcpError

WINDOWS = os.name == "nt"
TEMP_PREFIX = ".rahcp-part."
"""Downloads are written as ``.rahcp-part.<name>`` (same suffix) and renamed when complete."""
_MAX_NAME = 255


class UnsafeKeyError(RahcpError, ValueError):
    """A key that would be written outside the destination folder (or is not a file name)."""


def _segments(rel: str) -> list[str]:
    if WINDOWS:
        rel = rel.replace("\\", "/")
    return rel.split("/")


def check_relpath(rel: str) -> list[str]:
    """The segments of a relative path; raises ``UnsafeKeyError`` if it is not a plain one."""
    if not rel or "\x00" in rel or rel.startswith("/") or (WINDOWS and (":" in rel or rel.startswith("\\"))):
        raise UnsafeKeyError(f"refused {rel!r}: not a relative path inside the target folder")
    parts = _segments(rel)
    for part in parts:
        if part in ("", ".", ".."):
            raise UnsafeKeyError(f"refused {rel!r}: empty, '.' or '..' path segment")
    return parts


def relative_key(key: str, prefix: str) -> str | None:
    """The part of ``key`` below ``prefix`` (a download's path under ``dest_dir``).

    ``None`` for a folder marker (a key ending in ``/``). A prefix without a trailing slash
    that ends at a folder boundary drops the separator: prefix ``2025`` and key ``2025/a`` give
    ``a``. A key equal to the prefix gives its last segment. Raises ``UnsafeKeyError`` for a
    key not under the prefix.
    """
    if key.endswith("/"):
        return None
    if not key.startswith(prefix):
        raise UnsafeKeyError(f"refused {key!r}: not under prefix {prefix!r}")
    rel = key[len(prefix):]
    if not rel:
        return key.rpartition("/")[2] or key
    if prefix and not prefix.endswith("/") and rel.startswith("/"):
        rel = rel[1:]
    return rel


def temp_name(name: str) -> str:
    """The temporary file name for ``name``: same suffix, hashed when it would be too long."""
    temp = TEMP_PREFIX + name
    if len(temp.encode("utf-8", "surrogateescape")) <= _MAX_NAME:
        return temp
    suffix = os.path.splitext(name)[1][:32]
    return TEMP_PREFIX + hashlib.sha1(name.encode("utf-8", "surrogateescape")).hexdigest() + suffix


def folder_of_marker(key: str, prefix: str) -> str | None:
    """The folder a folder marker ``key`` (ending in ``/``) stands for, relative to ``prefix``;
    None when ``key`` is not a marker or is the prefix's own."""
    if not key.endswith("/") or not key.startswith(prefix):
        return None
    rel = key[len(prefix):].rstrip("/")
    if prefix and not prefix.endswith("/"):
        rel = rel.removeprefix("/")
    return rel or None


def name_limit(path: str) -> int:
    """The longest file name (bytes) the filesystem of ``path`` (or its nearest existing
    ancestor) allows; 255 when it does not say."""
    probe = os.path.abspath(path)
    while probe and not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    try:
        return int(os.pathconf(probe, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return _MAX_NAME


class LocalNames:
    """Which keys of one listing can become files under one folder, asked in key order.

    A bucket holds names a filesystem cannot: ``a`` and ``a/b.txt`` (a file and a folder of one
    name), ``x//y.txt`` (an empty segment), ``.``/``..`` segments, a segment longer than the
    filesystem allows. ``reason(rel)`` says why ``rel`` cannot be written (None: it can). For a
    file and a folder of one name, the first in key order wins (the file ``a`` sorts before
    every ``a/...``), so the outcome never depends on which worker ran first. Keys between
    ``a`` and ``a/...`` all begin with ``a``, so only the chain of accepted files that are
    prefixes of the current key is kept: memory is bounded by one key's depth, not the listing.
    """

    def __init__(self, base: str) -> None:
        self.limit = name_limit(base)
        self._files: list[str] = []  # accepted file paths, each a prefix of the next

    def reason(self, rel: str, *, folder: bool = False) -> str | None:
        """Why ``rel`` (a file, or a folder when ``folder``) cannot be written; None when it can."""
        try:
            parts = check_relpath(rel)
        except UnsafeKeyError as exc:
            return str(exc)
        for part in parts:
            if len(part.encode("utf-8", "surrogateescape")) > self.limit:
                return f"refused {rel!r}: a path segment of {len(part.encode('utf-8', 'surrogateescape'))} bytes (this filesystem allows {self.limit})"
        while self._files and not rel.startswith(self._files[-1]):
            self._files.pop()
        for accepted in self._files:
            if rel[len(accepted):].startswith("/") or (folder and rel == accepted):
                return f"refused {rel!r}: {accepted!r} is a file in this prefix, a folder of that name cannot be written too"
        if not folder:
            self._files.append(rel)
        return None


def writable_objects_filter(prefix: str, base: str) -> Callable[[str], str | None]:
    """``reason(key)`` for the keys of one listing under ``prefix`` (in key order) written
    under ``base`` (see ``LocalNames``); folder markers are checked as folders."""
    names = LocalNames(base)

    def reason(key: str) -> str | None:
        if key.endswith("/"):
            folder = folder_of_marker(key, prefix)
            return names.reason(folder, folder=True) if folder is not None else None
        try:
            rel = relative_key(key, prefix)
        except UnsafeKeyError as exc:
            return str(exc)
        return names.reason(rel) if rel is not None else None

    return reason
