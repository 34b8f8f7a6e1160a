"""The data plane of the metadata-only store: the S3 requests presigned URLs make, as WSGI.

It stands where moto's app stands behind ``DataPlaneMiddleware`` (counts, faults, expiry and
HCP's rules still apply first). Served: ``PUT`` of an object or a part (the body is hashed and
dropped), ``GET`` (zeros of the object's length, or the bytes of a key the store keeps; a single
``bytes=a-b`` range too), ``HEAD``,
``DELETE`` of an object or an upload (abort), and ``POST ?uploadId`` (complete). Anything else
is 501 ``NotImplemented``: the API's routes reach the store in process (``MetaS3Client``).
"""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qs

from botocore.exceptions import ClientError

from rahcp_prefect.testing import assembly
from rahcp_prefect.testing.metastore import MetaS3Client, MetaStore, etag_of

StartResponse = Callable[..., Any]
RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
ZEROS = bytes(1 << 20)


def _xml_error(code: str, message: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    ).encode()


def _zeros(count: int) -> Iterable[bytes]:
    while count > 0:
        step = min(count, len(ZEROS))
        yield ZEROS if step == len(ZEROS) else ZEROS[:step]
        count -= step


class MetaS3App:
    """WSGI app over a ``MetaStore`` for the data-plane requests clients send."""

    def __init__(self, store: MetaStore, client: MetaS3Client) -> None:
        self._store = store
        self._client = client  # the operator's hand: the middleware applied HCP's rules already

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method: str = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
        bucket, _, key = path.lstrip("/").partition("/")
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        try:
            if not key:
                return self._answer(start_response, 501, _xml_error("NotImplemented", "bucket requests go through the API"))
            if method == "PUT":
                return self._put(environ, start_response, bucket, key, query)
            if method in ("GET", "HEAD"):
                return self._get(environ, start_response, bucket, key, method == "HEAD")
            if method == "DELETE" and "uploadId" in query:
                self._client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=query["uploadId"][0])
                return self._answer(start_response, 204, b"")
            if method == "DELETE":
                self._client.delete_object(Bucket=bucket, Key=key)
                return self._answer(start_response, 204, b"")
            if method == "POST" and "uploadId" in query:
                return self._complete(environ, start_response, bucket, key, query["uploadId"][0])
        except ClientError as exc:
            error = exc.response["Error"]
            status = int(exc.response["ResponseMetadata"]["HTTPStatusCode"])
            body = b"" if method == "HEAD" else _xml_error(str(error["Code"]), str(error["Message"]))
            return self._answer(start_response, status, body)
        return self._answer(start_response, 501, _xml_error("NotImplemented", f"{method} is not served by the metadata store"))

    def _answer(self, start_response: StartResponse, status: int, body: bytes, headers: list[tuple[str, str]] | None = None) -> Iterable[bytes]:
        reason = {200: "OK", 204: "No Content", 206: "Partial Content"}.get(status, "Error")
        extra = headers or []
        if not any(name == "Content-Length" for name, _ in extra):
            extra = [*extra, ("Content-Length", str(len(body)))]
        if body:
            extra.append(("Content-Type", "application/xml"))
        start_response(f"{status} {reason}", extra)
        return [body]

    def _put(self, environ: dict[str, Any], start_response: StartResponse, bucket: str, key: str, query: dict[str, list[str]]) -> Iterable[bytes]:
        size, md5, body = _hash_body(environ, self._store.keeps(key))
        etag = etag_of(md5)
        if "uploadId" in query:
            number = int(query.get("partNumber", ["0"])[0])
            with self._store.lock:
                upload = self._client._upload(bucket, query["uploadId"][0], "UploadPart")
                upload.parts[number] = (size, etag)
                if body is not None:
                    upload.bodies[number] = body
        else:
            checksums = tuple(
                (name[5:].lower().replace("_", "-"), str(value))
                for name, value in environ.items()
                if name.startswith("HTTP_X_AMZ_CHECKSUM_")
            )
            self._store.store(bucket, key, size, etag, checksums, body)
        return self._answer(start_response, 200, b"", [("ETag", etag)])

    def _get(self, environ: dict[str, Any], start_response: StartResponse, bucket: str, key: str, head: bool) -> Iterable[bytes]:
        obj = self._store.object(bucket, key, "GetObject")
        headers = [
            ("ETag", obj.etag),
            ("Last-Modified", formatdate(obj.stored_at, usegmt=True)),
            ("Content-Type", "application/octet-stream"),
            ("Accept-Ranges", "bytes"),
            *obj.checksums,
        ]
        match = RANGE.match(environ.get("HTTP_RANGE", "")) if not head else None
        if match is not None and int(match.group(1)) < obj.size:
            first = int(match.group(1))
            last = min(int(match.group(2)) if match.group(2) else obj.size - 1, obj.size - 1)
            headers += [("Content-Length", str(last - first + 1)), ("Content-Range", f"bytes {first}-{last}/{obj.size}")]
            start_response("206 Partial Content", headers)
            return [obj.body[first : last + 1]] if obj.body is not None else _zeros(last - first + 1)
        headers.append(("Content-Length", str(obj.size)))
        start_response("200 OK", headers)
        if head:
            return []
        return [obj.body] if obj.body is not None else _zeros(obj.size)

    def _complete(self, environ: dict[str, Any], start_response: StartResponse, bucket: str, key: str, upload_id: str) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        root = ET.fromstring(environ["wsgi.input"].read(length) or b"<x/>")
        ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
        parts = [
            {"PartNumber": int(p.findtext(f"{ns}PartNumber") or 0), "ETag": p.findtext(f"{ns}ETag") or ""}
            for p in root.iterfind(f"{ns}Part")
        ]
        done = self._client.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id,
            MultipartUpload={"Parts": parts}, minimum=assembly.part_minimum.get(),
        )
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<CompleteMultipartUploadResult>'
            f"<Bucket>{bucket}</Bucket><Key>{key}</Key><ETag>{done['ETag']}</ETag>"
            "</CompleteMultipartUploadResult>"
        ).encode()
        return self._answer(start_response, 200, body)


def _hash_body(environ: dict[str, Any], keep: bool) -> tuple[int, bytes, bytes | None]:
    """Read the request body: its length, its MD5, and the bytes when ``keep`` (else None)."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    stream = environ["wsgi.input"]
    md5 = hashlib.md5()
    kept: list[bytes] = []
    got = 0
    while got < length:
        chunk = stream.read(min(length - got, 1 << 20))
        if not chunk:
            break
        md5.update(chunk)
        got += len(chunk)
        if keep:
            kept.append(chunk)
    return got, md5.digest(), b"".join(kept) if keep else None
