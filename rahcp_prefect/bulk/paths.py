"""Keys to local paths and back, refusing anything that could land outside the target folder.

Download keys come from a bucket anyone may have written to: ``a/../../etc/x``, ``/abs`` or a
Windows drive must never become a path outside ``dest_dir``. A key is split on ``/`` (and on
``\\`` on Windows) and refused if any segment is empty, ``.`` or ``..``; parent directories are
also resolved once each, so a symlink inside ``dest_dir`` cannot lead out of it either.
"""

from __future__ import annotations

import hashlib
import os
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


def local_path(base: str, rel: str) -> str:
    """``base`` joined with the checked segments of ``rel`` using the OS separator."""
    return base + os.sep + os.sep.join(check_relpath(rel))


def is_inside(base: str, path: str) -> bool:
    """Whether ``path`` resolves (symlinks included) to ``base`` or below it."""
    real = os.path.realpath(path)
    return real == base or real.startswith(base if base.endswith(os.sep) else base + os.sep)


def temp_name(name: str) -> str:
    """The temporary file name for ``name``: same suffix, hashed when it would be too long."""
    temp = TEMP_PREFIX + name
    if len(temp.encode("utf-8", "surrogateescape")) <= _MAX_NAME:
        return temp
    suffix = os.path.splitext(name)[1][:32]
    return TEMP_PREFIX + hashlib.sha1(name.encode("utf-8", "surrogateescape")).hexdigest() + suffix
