"""Body integrity on the built-in S3 server: ``Content-MD5`` checks and injected damage.

moto (5.x) stores a PUT whatever its ``Content-MD5`` says (checked: a wrong digest is stored
and answered 200), while S3 and HCP refuse it with 400 ``BadDigest`` and keep the previous
object. The data-plane middleware therefore reads a client's PUT body that carries the header,
checks it here and answers as S3 does before moto sees it.

Damage faults flip one byte of a body in flight: of a PUT's request body after the client
computed its digest (as a bad NIC or proxy would), or of a GET's response body.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from collections.abc import Iterable, Iterator


def flip_byte(body: bytes | bytearray) -> bytearray:
    """``body`` with the bits of its middle byte inverted (an empty body stays empty)."""
    damaged = bytearray(body)
    if damaged:
        damaged[len(damaged) // 2] ^= 0xFF
    return damaged


def digest_error(header: str, body: bytes | bytearray) -> tuple[str, bytes] | None:
    """S3's answer to a body that does not match its ``Content-MD5`` header, else None:
    ``("BadDigest" | "InvalidDigest", XML body)``."""
    try:
        expected = base64.b64decode(header.strip(), validate=True)
    except (binascii.Error, ValueError):
        expected = b""
    if len(expected) != 16:
        return "InvalidDigest", _error_xml("InvalidDigest", "The Content-MD5 you specified was invalid.")
    calculated = hashlib.md5(body).digest()
    if calculated == expected:
        return None
    message = "The Content-MD5 you specified did not match what we received."
    extra = (
        f"<ExpectedDigest>{expected.hex()}</ExpectedDigest>"
        f"<CalculatedDigest>{base64.b64encode(calculated).decode()}</CalculatedDigest>"
    )
    return "BadDigest", _error_xml("BadDigest", message, extra)


def _error_xml(code: str, message: str, extra: str = "") -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>{extra}"
        f"<RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId></Error>"
    ).encode()


def damaged_stream(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The response body ``chunks`` with one byte flipped in the first non-empty chunk."""
    damaged = False
    for chunk in chunks:
        if not damaged and chunk:
            damaged = True
            chunk = bytes(flip_byte(chunk))
        yield chunk
