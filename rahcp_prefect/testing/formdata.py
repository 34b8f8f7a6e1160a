"""Reads ``application/x-www-form-urlencoded`` and ``multipart/form-data`` bodies.

FastAPI's ``Form()`` needs the optional ``python-multipart`` package; the login form is the only
form the emulator reads, so a few lines of stdlib parsing avoid that dependency.
"""

from __future__ import annotations

from email.parser import BytesParser
from email.policy import HTTP
from urllib.parse import parse_qsl

from fastapi import Request


async def read_form(request: Request) -> dict[str, str]:
    """The form's text fields (last value wins); empty for any other content type."""
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    body = await request.body()
    if media_type == "application/x-www-form-urlencoded":
        return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    if media_type == "multipart/form-data":
        message = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
        )
        fields: dict[str, str] = {}
        if message.is_multipart():
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                if isinstance(name, str) and part.get_filename() is None:
                    payload = part.get_payload(decode=True) or b""
                    fields[name] = payload.decode("utf-8", "replace")
        return fields
    return {}
