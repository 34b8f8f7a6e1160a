"""TLS with the archive's own CA: the emulator serves HTTPS on both planes (the API, and the S3
that presigned URLs point at) with a certificate from a CA made here (``trustme``).

Without the CA a run fails at once with an error that names the host, the certificate problem
and the setting (never retried as if transient, never "Login failed"), and writes nothing. With
``ca_bundle`` on the credentials block an upload (a multipart file included) and a download
complete, and no secret reaches a log.
"""

from __future__ import annotations

import logging
import time
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from pydantic import SecretStr

from rahcp_prefect.blocks import HCPCredentials, HCPTracker, HCPTransferSettings
from rahcp_prefect.client import AuthenticationError, CertificateError, HCPClient
from rahcp_prefect.client.dataplane import DataPlane
from rahcp_prefect.flows import bulk_download, bulk_upload
from rahcp_prefect.testing import HCPEmulator

from .helpers import tree_hashes
from .test_secrets import FORBIDDEN, SERVER_SIDE, _prefect_texts, every_logger_at_debug

MIB = 1024 * 1024
PASSWORD = "Tls-Secret-Pw-7781"
PROBLEM = "unable to get local issuer certificate"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA of the archive, and the server certificate (with its key) it issued for 127.0.0.1."""
    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA(organization_name="Archive CA")
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.private_key_and_cert_chain_pem.write_to_path(str(folder / "server.pem"))
    ca.cert_pem.write_to_path(str(folder / "archive-ca.pem"))
    return {"server": folder / "server.pem", "ca": folder / "archive-ca.pem"}


@pytest.fixture(scope="module")
def tls_emulator(tls_files: dict[str, Path]) -> Iterator[HCPEmulator]:
    server = str(tls_files["server"])
    with HCPEmulator(tls=(server, server), users={"archivist": PASSWORD}) as emulator:
        yield emulator


@pytest.fixture
def tls_bucket(tls_emulator: HCPEmulator) -> str:
    return tls_emulator.create_bucket(f"tls-{uuid.uuid4().hex[:10]}")


def test_the_emulator_serves_both_planes_over_https(tls_emulator: HCPEmulator) -> None:
    assert tls_emulator.base_url.startswith("https://127.0.0.1:")
    assert tls_emulator.s3_endpoint.startswith("https://127.0.0.1:")


async def test_an_untrusted_api_certificate_fails_at_once_naming_host_problem_and_setting(
    tls_emulator: HCPEmulator,
) -> None:
    client = HCPClient(endpoint=tls_emulator.base_url, username="archivist", password=PASSWORD,
                       max_retries=4, retry_base_delay=1.0)
    started = time.monotonic()
    with pytest.raises(CertificateError) as info:
        async with client:
            pass
    assert time.monotonic() - started < 3, "not retried (4 retries would back off 15 s)"
    assert client.api_retries == 0
    message = str(info.value)
    host = tls_emulator.base_url.split("/")[2]
    assert f"TLS certificate of {host} not trusted" in message
    assert PROBLEM in message and "ca_bundle" in message and "HCP_CA_BUNDLE" in message
    assert not isinstance(info.value, AuthenticationError) and "Login failed" not in message
    assert info.value.host == host and PASSWORD not in message


async def test_an_untrusted_s3_certificate_fails_at_once_too(
    tls_emulator: HCPEmulator, tls_bucket: str, tls_files: dict[str, Path], tmp_path: Path
) -> None:
    """The API trusted, the data plane not (HCP's S3 gateway may have a certificate of its own)."""
    (tmp_path / "a.txt").write_bytes(b"abc")
    async with HCPClient(endpoint=tls_emulator.base_url, username="archivist", password=PASSWORD,
                         ca_bundle=str(tls_files["ca"])) as client:
        url = (await client.s3.presign_put(tls_bucket, "a.txt"))
    plane = DataPlane(max_retries=4, retry_base_delay=1.0)  # default trust: not the archive's CA
    started = time.monotonic()
    try:
        with pytest.raises(CertificateError) as info:
            await plane.put_file(url, tmp_path / "a.txt", 3, what=f"{tls_bucket}/a.txt")
    finally:
        await plane.aclose()
    assert time.monotonic() - started < 3 and plane.retries == 0
    message = str(info.value)
    assert f"TLS certificate of {tls_emulator.s3_endpoint.split('/')[2]} not trusted" in message
    assert PROBLEM in message and "ca_bundle" in message and "X-Amz" not in message
    assert tls_emulator.stored(tls_bucket) == {}


async def _save_blocks(emulator: HCPEmulator, tmp_path: Path, ca_bundle: Path | None) -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:10]
    names = {"credentials_block": f"tls-{suffix}", "settings_block": f"tls-settings-{suffix}",
             "tracker_block": f"tls-tracker-{suffix}"}
    await HCPCredentials(
        endpoint=emulator.base_url, username="archivist", password=SecretStr(PASSWORD),
        ca_bundle=str(ca_bundle) if ca_bundle else None, retry_base_delay=1.0, max_retries=4,
    ).save(names["credentials_block"])
    await HCPTransferSettings(workers=4, multipart_threshold=8 * MIB, multipart_chunk=5 * MIB,
                              progress_interval=0.05).save(names["settings_block"])
    await HCPTracker(sqlite_path=str(tmp_path / "tracker.db")).save(names["tracker_block"])
    return names


@pytest.mark.timeout(240)
async def test_a_bulk_upload_without_the_ca_fails_in_seconds_and_writes_nothing(
    prefect_api: None, tls_emulator: HCPEmulator, tls_bucket: str, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_bytes(b"a" * 100)
    blocks = await _save_blocks(tls_emulator, tmp_path, ca_bundle=None)
    started = time.monotonic()
    state = await bulk_upload(source_dir=str(source), bucket=tls_bucket, prefix="night/", return_state=True,
                              **blocks)
    elapsed = time.monotonic() - started
    assert state.is_failed()
    with pytest.raises(CertificateError) as info:
        await state.result()
    assert PROBLEM in str(info.value) and "ca_bundle" in str(info.value)
    assert PROBLEM in (state.message or "")
    assert elapsed < 30, f"failed after {elapsed:.1f} s: retried as if transient?"
    assert tls_emulator.stored(tls_bucket) == {}


@pytest.mark.timeout(300)
async def test_with_ca_bundle_an_upload_with_multipart_and_a_download_complete_leaking_nothing(
    prefect_api: None, tls_emulator: HCPEmulator, tls_bucket: str, tls_files: dict[str, Path], tmp_path: Path,
) -> None:
    source = tmp_path / "src"
    (source / "docs").mkdir(parents=True)
    for index in range(12):
        (source / "docs" / f"doc-{index}.txt").write_bytes(b"%d" % index * 200)
    (source / "big.bin").write_bytes(bytes(range(256)) * (40 * 1024 * 4))  # 40 MiB: multipart
    blocks = await _save_blocks(tls_emulator, tmp_path, ca_bundle=tls_files["ca"])
    texts: list[str] = []
    with every_logger_at_debug() as capture:
        up = await bulk_upload(source_dir=str(source), bucket=tls_bucket, prefix="night/", return_state=True,
                               **blocks)
        assert up.is_completed(), up.message
        texts += await _prefect_texts(up)
        down = await bulk_download(bucket=tls_bucket, prefix="night/", dest_dir=str(tmp_path / "dest"),
                                   return_state=True, **blocks)
        assert down.is_completed(), down.message
        texts += await _prefect_texts(down)
    stored = tls_emulator.stored(tls_bucket, "night/")
    assert stored["night/big.bin"] == (source / "big.bin").read_bytes()
    landed = tree_hashes(tmp_path / "dest")
    assert {rel: landed[rel] for rel in tree_hashes(source)} == tree_hashes(source)
    counts = tls_emulator.request_counts
    assert counts[("data", "PUT", "/{bucket}/{key}?partNumber")] >= 8, "40 MiB in 5 MiB parts, over https"

    records = [r for r in capture.records if not r.name.startswith(SERVER_SIDE)]
    assert records
    for record in records:
        texts.append(record.getMessage())
        if record.exc_info:
            texts.append("".join(traceback.format_exception(*record.exc_info)))
    for text in texts:
        assert PASSWORD not in text, text[:300]
        assert not FORBIDDEN.search(text), text[:300]


def test_the_ca_bundle_reaches_both_planes_from_the_environment(tls_files: dict[str, Path]) -> None:
    client = HCPClient.from_env({"HCP_ENDPOINT": "https://hcp.example/api/v1", "HCP_CA_BUNDLE": str(tls_files["ca"])})
    assert client.config.ca_bundle == str(tls_files["ca"])
    assert client.data.ssl_context is client.ssl_context
    assert any(cert.get("subject") and "Archive CA" in str(cert["subject"])
               for cert in client.ssl_context.get_ca_certs())


def test_a_missing_ca_bundle_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"ca_bundle: no such file: .*nope\.pem"):
        HCPClient(endpoint="https://hcp.example/api/v1", ca_bundle=str(tmp_path / "nope.pem"))
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(ValueError, match=r"ca_bundle: .*junk\.pem is not a readable PEM file"):
        HCPClient(endpoint="https://hcp.example/api/v1", ca_bundle=str(tmp_path / "junk.pem"))
    logging.getLogger(__name__).debug("checked")
