"""Digests of the bytes the data plane sends: MD5 for S3's ``Content-MD5`` and ETags, SHA-256
of whole files for the tracker and the manifest.

S3 (and HCP) refuse a PUT whose body does not hash to its ``Content-MD5`` (400 ``BadDigest``),
and answer a single PUT with the MD5 of what they stored as the ETag; a multipart object's ETag
is the MD5 of its parts' raw MD5 digests, then ``-N``. Checking both catches a body damaged on
the way in either direction. ``hashlib`` releases the GIL on buffers over 2 KiB, so large
buffers are hashed in a worker thread while the event loop moves other files.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

HASH_ON_LOOP_LIMIT = 256 * 1024
"""Buffers up to this size are hashed on the event loop (about 0.6 ms for MD5 + SHA-256);
larger ones in a worker thread."""

_PLAIN_MD5 = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True, slots=True)
class Uploaded:
    """One object as S3 acknowledged it, with the digests of the bytes that were sent.

    ``md5`` is the hex MD5 of the body for a single PUT, and for a multipart upload the
    composite ``<md5 of the part digests>-N`` (its ETag without quotes), which anyone can
    recompute from the file and the part size. ``sha256`` is the hex SHA-256 of the whole
    object (None for a single part of a multipart upload). ``part_md5s`` lists the hex MD5 of
    each part, in part order (multipart only).
    """

    etag: str
    md5: str
    sha256: str | None = None
    part_md5s: tuple[str, ...] = field(default=())


def content_md5(digest: bytes) -> str:
    """The ``Content-MD5`` header value of a raw MD5 digest (base64, RFC 1864)."""
    return base64.b64encode(digest).decode("ascii")


def bare_etag(etag: str) -> str:
    """An ETag without its quotes, lowercase (S3 quotes them; some proxies add ``W/``)."""
    etag = etag.strip()
    if etag.startswith("W/"):
        etag = etag[2:]
    return etag.strip('"').lower()


def plain_md5_of_etag(etag: str | None) -> str | None:
    """The object's MD5 when ``etag`` is a single-part ETag (32 hex digits), else None
    (multipart ``-N`` ETags and anything else say nothing about the whole object's MD5)."""
    if not etag:
        return None
    bare = bare_etag(etag)
    return bare if _PLAIN_MD5.fullmatch(bare) else None


def multipart_md5(part_digests: Iterable[bytes]) -> str:
    """The composite MD5 S3 gives a multipart object: ``md5(digest_1 + ... + digest_N)-N``."""
    digests = list(part_digests)
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"


def md5_and_sha256(data: bytes | bytearray | memoryview, *, sha256: bool = True) -> tuple[bytes, str | None]:
    """The raw MD5 and (optionally) hex SHA-256 of ``data``, in one pass over the buffer."""
    md5 = hashlib.md5(data).digest()
    return md5, hashlib.sha256(data).hexdigest() if sha256 else None


class Hasher:
    """MD5 and/or SHA-256 of a stream of chunks; ``reset`` starts over (a retried GET).

    Per file it costs what the digests need and no more: ``reset`` on a hasher fed nothing
    since keeps its fresh digest objects (the engine makes one per file and the data plane
    resets it before each attempt), and a hex digest read twice is computed once."""

    __slots__ = ("_want_md5", "_want_sha256", "_md5", "_sha256", "_fed", "_md5_hex", "_sha256_hex")

    def __init__(self, *, md5: bool = True, sha256: bool = True) -> None:
        self._want_md5 = md5
        self._want_sha256 = sha256
        self._fed = True
        self.reset()

    def reset(self) -> None:
        if self._fed:  # else the digests are still fresh: nothing to start over
            self._md5 = hashlib.md5() if self._want_md5 else None
            self._sha256 = hashlib.sha256() if self._want_sha256 else None
            self._fed = False
        self._md5_hex: str | None = None
        self._sha256_hex: str | None = None

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._fed = True
        self._md5_hex = self._sha256_hex = None
        if self._md5 is not None:
            self._md5.update(data)
        if self._sha256 is not None:
            self._sha256.update(data)

    @property
    def md5(self) -> str | None:
        """Hex MD5 of what was fed since the last reset (None when not computed)."""
        if self._md5 is None:
            return None
        if self._md5_hex is None:
            self._md5_hex = self._md5.hexdigest()
        return self._md5_hex

    @property
    def sha256(self) -> str | None:
        """Hex SHA-256 of what was fed since the last reset (None when not computed)."""
        if self._sha256 is None:
            return None
        if self._sha256_hex is None:
            self._sha256_hex = self._sha256.hexdigest()
        return self._sha256_hex


async def hash_into(hasher: Hasher, data: bytes | bytearray | memoryview) -> None:
    """``hasher.update(data)``, in a worker thread when ``data`` is large."""
    if len(data) <= HASH_ON_LOOP_LIMIT:
        hasher.update(data)
    else:
        await asyncio.get_running_loop().run_in_executor(None, hasher.update, data)


HASH_BLOCK = 1 << 20
"""Bytes read (``pread``) and hashed at a time when a file's region is hashed from disk."""
HASH_STEP = 16 << 20
"""Most bytes of a file one worker-thread call hashes (see ``hash_file_steps``)."""


def hash_file(path: str, hasher: Hasher, *, block: int = 8 << 20) -> Hasher:
    """Feed the whole file ``path`` to ``hasher`` (blocking: run it in a thread)."""
    with open(path, "rb", buffering=0) as handle:
        buffer = bytearray(block)
        view = memoryview(buffer)
        while count := handle.readinto(buffer):
            hasher.update(view[:count])
    return hasher


def feed_region(fd: int, offset: int, length: int, sinks: Iterable[Any], *, block: int = HASH_BLOCK) -> int:
    """Feed bytes ``[offset, offset + length)`` of the open file ``fd`` to every digest in
    ``sinks``, ``block`` bytes at a time through one reused buffer (blocking: run it in a
    thread; memory is one block). Returns the bytes fed: fewer than ``length`` when the file
    ends sooner."""
    sinks = list(sinks)
    buffer = bytearray(min(block, max(length, 1)))
    view = memoryview(buffer)
    fed = 0
    while fed < length:
        want = min(len(buffer), length - fed)
        count = os.preadv(fd, [view[:want]], offset + fed)
        if not count:
            break
        for sink in sinks:
            sink.update(view[:count])
        fed += count
    return fed


def hash_region(path: str | os.PathLike[str], offset: int, length: int, sinks: Iterable[Any]) -> int:
    """``feed_region`` on the file ``path`` (opened and closed here)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        return feed_region(fd, offset, length, sinks)
    finally:
        os.close(fd)


async def hash_file_steps(
    path: str | os.PathLike[str], offset: int, length: int, sinks: Iterable[Any], *, step: int = HASH_STEP
) -> int:
    """``hash_region`` in worker-thread calls of at most ``step`` bytes, in order: a long hash
    never holds an executor thread for long (the parts of other transfers get their turn), and
    a cancelled one stops after the step in flight. Returns the bytes fed (fewer than
    ``length``: the file ended sooner)."""
    loop = asyncio.get_running_loop()
    sinks = list(sinks)
    fed = 0
    while fed < length:
        count = min(step, length - fed)
        got = await loop.run_in_executor(None, hash_region, path, offset + fed, count, sinks)
        fed += got
        if got < count:
            break
    return fed
