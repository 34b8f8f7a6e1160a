"""The emulator's CompleteMultipartUpload: the object put together from its parts in one copy.

moto's own complete joins the parts in memory and stores the join: four copies of the object,
plus a full-object CRC64NVME (a checksum HCP does not offer) over a fifth. For a 1 GiB object
that is 5 to 13 s on a two-core machine, more than sending its parts, so every large-upload
figure measured against the emulator was mostly moto's complete. The one installed here makes
the same checks (``InvalidPart``, ``EntityTooSmall``, ``MalformedXML``), answers the same
multipart ETag and stores the same bytes, copied once from each part's buffer into the object's
(in the kernel when both are files on disk). An upload created with a checksum algorithm keeps
moto's complete, which computes the checksum it asked for.
"""

from __future__ import annotations

import codecs
import os
import shutil
import tempfile
from collections.abc import Iterator
from hashlib import md5
from typing import Any

from moto.s3.exceptions import EntityTooSmall, InvalidPart, MalformedXML
from moto.s3.models import S3_UPLOAD_PART_MIN_SIZE, FakeKey, FakeMultipart
from moto.settings import get_s3_default_key_buffer_size

COPY_CHUNK = 8 * 1024 * 1024

_moto_complete = FakeMultipart.complete
_moto_value = FakeKey.value


class _Assembly(bytes):
    """What our complete hands to moto's ``put_object`` in place of the joined bytes: an empty
    ``bytes`` (so moto's checks of the value pass) carrying the object's buffer, already
    filled (moto disposes of the parts before it creates the key); the value setter below makes
    it the new key's buffer."""

    buffer: Any
    size: int


def _complete(
    self: FakeMultipart, body: Iterator[tuple[int, str]]
) -> tuple[bytes, str, tuple[str, str, int] | None]:
    """moto's ``FakeMultipart.complete`` without joining the parts: validates them in the
    order the request lists them and computes the multipart ETag from their MD5s."""
    if self.metadata.get("x-amz-checksum-algorithm") or self.metadata.get("x-amz-checksum-type"):
        return _moto_complete(self, body)
    decode_hex = codecs.getdecoder("hex_codec")
    digests = bytearray()
    parts: list[FakeKey] = []
    for number, etag in body:
        part = self.parts.get(number)
        if part is None or part.etag.replace('"', "") != etag.replace('"', ""):
            raise InvalidPart()
        if parts and parts[-1].contentsize < S3_UPLOAD_PART_MIN_SIZE:
            raise EntityTooSmall()
        digests.extend(decode_hex(part.etag.replace('"', ""))[0])  # type: ignore[arg-type]
        parts.append(part)
    if not parts:
        raise MalformedXML
    assembly = _Assembly()
    assembly.buffer = tempfile.SpooledTemporaryFile(get_s3_default_key_buffer_size())
    assembly.size = sum(part.contentsize for part in parts)
    if assembly.size > get_s3_default_key_buffer_size():
        assembly.buffer.rollover()
    for part in parts:
        with part.lock:
            _append(part._value_buffer, assembly.buffer)
    return assembly, f"{md5(bytes(digests)).hexdigest()}-{len(parts)}", None


def _set_value(self: FakeKey, new_value: Any) -> None:
    """moto's value setter, except that an ``_Assembly``'s buffer becomes the key's own."""
    if not isinstance(new_value, _Assembly):
        _moto_value.fset(self, new_value)  # type: ignore[attr-defined]
        return
    self._value_buffer.close()
    self._value_buffer = new_value.buffer
    self.contentsize = new_value.size


def _append(source: Any, target: Any) -> None:
    """Copies all of ``source`` to the end of ``target`` (both moto key buffers:
    ``SpooledTemporaryFile``): file to file in the kernel, else through a chunk in memory."""
    offset = target.tell()
    if getattr(source, "_rolled", False) and getattr(target, "_rolled", False):
        source.flush()
        target.flush()
        try:
            copied = _copy_range(source.fileno(), target.fileno(), offset)
        except OSError:
            copied = -1  # no copy_file_range here: copy through memory
        if copied >= 0:
            target.seek(offset + copied)
            return
        target.seek(offset)
        target.truncate()
    source.seek(0)
    shutil.copyfileobj(source, target, COPY_CHUNK)


def _copy_range(src: int, dst: int, offset: int) -> int:
    """``copy_file_range`` of the whole of ``src`` to ``dst`` at ``offset``; returns the bytes copied."""
    size = os.fstat(src).st_size
    copied = 0
    while copied < size:
        sent = os.copy_file_range(src, dst, size - copied, copied, offset + copied)
        if sent == 0:
            raise OSError("copy_file_range copied nothing")
        copied += sent
    return copied


def install() -> None:
    """Puts the one-copy complete in place of moto's (idempotent; process-wide, as moto's
    backends are)."""
    FakeMultipart.complete = _complete  # type: ignore[method-assign]
    FakeKey.value = _moto_value.setter(_set_value)  # type: ignore[method-assign,attr-defined]
