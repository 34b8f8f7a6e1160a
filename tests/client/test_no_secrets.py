"""Credential safety over a full round trip: no password, token or signature in any log record
(at DEBUG, every client-side logger) or in any exception text."""

from __future__ import annotations

import logging
import os
import re
import traceback
from pathlib import Path
from typing import Any

import pytest

from rahcp_prefect.client import AuthenticationError, HCPClient, HCPError

MIB = 1024 * 1024
# The emulator runs in this process; its own (server-side) loggers are not the SDK's output.
SERVER_SIDE = ("rahcp_prefect.testing", "uvicorn", "botocore", "boto3", "urllib3", "moto",
               "werkzeug", "s3transfer", "fastapi", "starlette")
SIGNATURE_TEXT = re.compile(r"(?i)(X-Amz-Signature|X-Amz-Credential|Signature=)")


def _texts(records: list[logging.LogRecord], errors: list[BaseException]) -> list[str]:
    texts = []
    for record in records:
        texts.append(record.getMessage())
        if record.exc_info:
            texts.append("".join(traceback.format_exception(*record.exc_info)))
    for error in errors:
        texts.append(str(error))
        texts.append(repr(error))
        texts.append("".join(traceback.format_exception(error)))
    return texts


async def test_full_round_trip_leaks_no_secret(
    make_client: Any, hcp_credentials: dict, hcp_emulator: Any, hcp_bucket: str,
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    password = hcp_credentials["password"]
    errors: list[BaseException] = []

    client = await make_client(multipart_threshold=5 * MIB, multipart_chunk=5 * MIB, retry_deadline=0.5)
    tokens = {client.token}
    small = tmp_path / "small.txt"
    small.write_bytes(b"hello")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(11 * MIB))

    # a full successful round trip
    await client.s3.list_buckets()
    await client.s3.upload(hcp_bucket, "dir/small file?.txt", small)
    await client.s3.upload(hcp_bucket, "dir/big.bin", big)  # multipart
    await client.s3.download(hcp_bucket, "dir/big.bin", tmp_path / "out" / "big.bin")
    await client.s3.download_bytes(hcp_bucket, "dir/small file?.txt")
    await client.s3.list_objects(hcp_bucket, prefix="dir/")
    await client.s3.copy(hcp_bucket, "copy/small", hcp_bucket, "dir/small file?.txt")
    await client.s3.head(hcp_bucket, "copy/small")
    await client.s3.delete(hcp_bucket, "copy/small")
    await client.mapi.list_namespaces("dev-ai")
    urls = await client.s3.presign_bulk(hcp_bucket, ["a", "b"])
    signatures = {re.search(r"X-Amz-Signature=([0-9a-f]+)", url).group(1) for url in urls.values()}

    # a re-login, then failing requests of every kind (with retries on the way)
    hcp_emulator.faults.add("api", path=r"/buckets$", status=401, count=1)
    await client.s3.list_buckets()
    tokens.add(client.token)
    hcp_emulator.faults.add("api", path=r"/buckets$", status=503, count=None)
    hcp_emulator.faults.add("data", method="PUT", status=403, count=None)
    hcp_emulator.faults.add("data", method="GET", status=500, count=None)
    hcp_emulator.faults.add("api", method="POST", path=r"/copy$", drop=True, count=None)
    failing = [
        client.s3.list_buckets(),                               # RetryableError after backoff
        client.s3.head(hcp_bucket, "missing"),                  # NotFoundError
        client.s3.upload(hcp_bucket, "k", b"x"),                # 403 twice on the data plane
        client.s3.upload(hcp_bucket, "big2", big),              # multipart part 403 -> abort
        client.s3.download(hcp_bucket, "dir/big.bin", tmp_path / "never"),  # 500s on GET
        client.s3.copy(hcp_bucket, "x", hcp_bucket, "dir/big.bin"),         # dropped connections
        client.s3.presign_get(hcp_bucket, "k", expires=0),      # 422
    ]
    for call in failing:
        with pytest.raises(HCPError) as info:
            await call
        errors.append(info.value)
    hcp_emulator.faults.clear()
    with pytest.raises(AuthenticationError) as info:
        async with HCPClient(**{**hcp_credentials, "password": "x", "tenant": "bad_tenant!"}):
            pass
    errors.append(info.value)

    records = [r for r in caplog.records if not r.name.startswith(SERVER_SIDE)]
    names = {r.name for r in records}
    assert {"rahcp_prefect.client.client", "rahcp_prefect.client.dataplane",
            "rahcp_prefect.client.s3", "rahcp_prefect.client.multipart"} <= names
    assert any(r.levelno == logging.DEBUG for r in records)  # the capture really ran at DEBUG
    assert any(r.levelno == logging.WARNING for r in records)  # retries were logged
    assert len(errors) == 8

    for text in _texts(records, errors):
        assert password not in text
        for token in tokens:
            assert token not in text
        for signature in signatures:
            assert signature not in text
        assert not SIGNATURE_TEXT.search(text), text
