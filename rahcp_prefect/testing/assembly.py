"""The emulator's CompleteMultipartUpload: the object is its parts, joined without a copy.

moto's own complete joins the parts in memory and stores the join: four copies of the object,
plus a full-object CRC64NVME (a checksum HCP does not offer) over a fifth. For a 1 GiB object
that took 5 to 13 s on a two-core machine, more than sending the parts, so every large-upload
figure measured against the emulator was mostly moto's complete. This one makes the same checks
(``InvalidPart``, ``EntityTooSmall`` against ``part_minimum``, ``MalformedXML``, and
``InvalidPartOrder``, which moto's omits), answers the same multipart ETag and
serves the same bytes, but does not copy them: the completed key reads the parts' own buffers,
which it takes over. A store whose complete takes time in proportion to the object is modelled
with a delay fault on the complete route. An upload created with a checksum algorithm keeps
moto's complete, which computes the checksum it asked for.
"""

from __future__ import annotations

import bisect
import codecs
import io
import tempfile
from collections.abc import Iterator
from contextvars import ContextVar
from hashlib import md5
from typing import Any

from moto.s3.exceptions import EntityTooSmall, InvalidPart, InvalidPartOrder, MalformedXML
from moto.s3.models import S3_UPLOAD_PART_MIN_SIZE, FakeKey, FakeMultipart

_moto_complete = FakeMultipart.complete
_moto_value = FakeKey.value

part_minimum: ContextVar[int] = ContextVar("part_minimum", default=S3_UPLOAD_PART_MIN_SIZE)
"""The smallest part but the last for the request being served: S3's 5 MiB unless the data plane
sets HCP's 1 MiB (``namespace_rules``) around the call."""


class JoinedParts:
    """A read-only file over part buffers, one after the other: what a completed key reads.

    It offers what moto and the emulator call on a key's buffer (``seek``, ``tell``, ``read``,
    ``close``); callers hold the key's lock, as they do for moto's own buffers.
    """

    def __init__(self, buffers: list[tuple[Any, int]]) -> None:
        self._buffers = [buffer for buffer, _ in buffers]
        self._starts: list[int] = []
        total = 0
        for _, size in buffers:
            self._starts.append(total)
            total += size
        self._sizes = [size for _, size in buffers]
        self.size = total
        self._position = 0
        self.closed = False

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def tell(self) -> int:
        return self._position

    def read(self, size: int = -1) -> bytes:
        end = self.size if size is None or size < 0 else min(self.size, self._position + size)
        pieces = []
        while self._position < end:
            index = bisect.bisect_right(self._starts, self._position) - 1
            within = self._position - self._starts[index]
            length = min(end - self._position, self._sizes[index] - within)
            buffer = self._buffers[index]
            buffer.seek(within)
            piece = buffer.read(length)
            if len(piece) != length:
                raise OSError(f"part {index + 1} of a completed object is short")
            pieces.append(piece)
            self._position += length
        return b"".join(pieces)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        for buffer in {id(b): b for b in self._buffers}.values():
            buffer.close()
        self.closed = True


class _Assembly(bytes):
    """What our complete hands to moto's ``put_object`` in place of the joined bytes: an empty
    ``bytes`` (so moto's handling of the value passes) carrying the joined parts; the value
    setter below makes them the new key's buffer."""

    joined: JoinedParts


def _complete(
    self: FakeMultipart, body: Iterator[tuple[int, str]]
) -> tuple[bytes, str, tuple[str, str, int] | None]:
    """moto's ``FakeMultipart.complete`` without the join: checks the parts in the order the
    request lists them, computes the multipart ETag from their MD5s and takes their buffers
    (moto disposes of the parts right after, so each leaves an empty buffer behind)."""
    if self.metadata.get("x-amz-checksum-algorithm") or self.metadata.get("x-amz-checksum-type"):
        return _moto_complete(self, body)
    decode_hex = codecs.getdecoder("hex_codec")
    digests = bytearray()
    parts: list[FakeKey] = []
    previous = 0
    for number, etag in body:
        if number <= previous:
            raise InvalidPartOrder()  # S3 and HCP refuse parts out of order; moto's complete does not
        previous = number
        part = self.parts.get(number)
        if part is None or part.etag.replace('"', "") != etag.replace('"', ""):
            raise InvalidPart()
        if parts and parts[-1].contentsize < part_minimum.get():
            raise EntityTooSmall()
        digests.extend(decode_hex(part.etag.replace('"', ""))[0])  # type: ignore[arg-type]
        parts.append(part)
    if not parts:
        raise MalformedXML
    taken: dict[int, Any] = {}
    for part in parts:
        with part.lock:
            if id(part) not in taken:
                taken[id(part)] = part._value_buffer
                part._value_buffer = tempfile.SpooledTemporaryFile(1)
    assembly = _Assembly()
    assembly.joined = JoinedParts([(taken[id(part)], part.contentsize) for part in parts])
    return assembly, f"{md5(bytes(digests)).hexdigest()}-{len(parts)}", None


def _set_value(self: FakeKey, new_value: Any) -> None:
    """moto's value setter, except that an ``_Assembly``'s joined parts become the key's
    buffer, and a key over joined parts gets a buffer of its own before it is written."""
    if isinstance(new_value, _Assembly):
        self._value_buffer.close()
        self._value_buffer = new_value.joined
        self.contentsize = new_value.joined.size
        return
    if isinstance(self._value_buffer, JoinedParts):
        self._value_buffer.close()
        self._value_buffer = tempfile.SpooledTemporaryFile(self._max_buffer_size)
    _moto_value.fset(self, new_value)  # type: ignore[attr-defined]


def install() -> None:
    """Puts this complete in place of moto's (idempotent; process-wide, as moto's backends are)."""
    FakeMultipart.complete = _complete  # type: ignore[method-assign]
    FakeKey.value = _moto_value.setter(_set_value)  # type: ignore[method-assign,attr-defined]
