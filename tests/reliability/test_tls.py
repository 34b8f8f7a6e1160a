"""TLS with the archive's own CA: the emulator serves HTTPS on both planes (the API, and the S3
that presigned URLs point at) with a certificate from a CA made here (``trustme``).

Without the CA a run fails at once with an error that names the host, the certificate problem
and the setting (never retried as if transient, never "Login failed"), and writes nothing. The
same when only the S3 endpoint's certificate is not trusted (the API's is): the first file to
meet it stops the whole transfer, instead of every file failing one by one. With ``ca_bundle``
on the credentials block an upload (a multipart file included) and a download complete, and no
secret reaches a log.
"""

from __future__ import annotations

import logging
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from pydantic import SecretStr

from rahcp_prefect.blocks import HCPCredentials, HCPTracker, HCPTransferSettings
from rahcp_prefect.client import AuthenticationError, CertificateError, HCPClient
from rahcp_prefect.client.dataplane import DataPlane
from rahcp_prefect.bulk import BulkDownloadConfig, BulkUploadConfig
from rahcp_prefect.bulk import bulk_download as engine_download
from rahcp_prefect.bulk import bulk_upload as engine_upload
from rahcp_prefect.bulk.verify import hash_objects
from rahcp_prefect.flows import bulk_download, bulk_upload
from rahcp_prefect.testing import HCPEmulator
from rahcp_prefect.tracker import create_tracker

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


@pytest.fixture(scope="module")
def split_emulator(tls_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[HCPEmulator]:
    """The API with the archive's CA (trusted through ``ca_bundle``), its S3 endpoint with a
    certificate from a second CA the client is never given (an S3 gateway of its own)."""
    folder = tmp_path_factory.mktemp("s3-tls")
    gateway = trustme.CA(organization_name="S3 Gateway CA")
    gateway.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(str(folder / "s3.pem"))
    api, s3 = str(tls_files["server"]), str(folder / "s3.pem")
    with HCPEmulator(tls=(api, api), s3_tls=(s3, s3), users={"archivist": PASSWORD}) as emulator:
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


def _source(folder: Path, files: int) -> Path:
    folder.mkdir()
    for index in range(files):
        (folder / f"f-{index:03d}.txt").write_bytes(b"x%d" % index * 50)
    return folder


def _seeded_bucket(emulator: HCPEmulator, prefix: str, objects: int) -> str:
    """A new bucket holding ``objects`` small objects under ``prefix``, put by the operator."""
    bucket = emulator.create_bucket(f"s3tls-{uuid.uuid4().hex[:10]}")
    for index in range(objects):
        emulator.s3.put_object(Bucket=bucket, Key=f"{prefix}f-{index:03d}.txt", Body=b"y" * 100)
    return bucket


def _assert_names_the_s3_certificate(error: BaseException, emulator: HCPEmulator) -> None:
    """The error names the S3 host, the certificate problem and the setting, and no secret."""
    message = str(error)
    assert f"TLS certificate of {emulator.s3_endpoint.split('/')[2]} not trusted" in message, message
    assert PROBLEM in message and "ca_bundle" in message and "HCP_CA_BUNDLE" in message
    assert PASSWORD not in message and "Signature=" not in message and not FORBIDDEN.search(message)


async def _engine_stops_at_once(
    emulator: HCPEmulator, ca: Path, tmp_path: Path, run: Callable[[HCPClient, Any], Awaitable[Any]]
) -> None:
    """``run(client, tracker)`` (an engine transfer, the API trusted through ``ca_bundle``, the S3
    endpoint not) raises the ``CertificateError`` within seconds, never retried, with no file
    recorded (not one per-file error after another)."""
    tracker = create_tracker(str(tmp_path / "t.db"), job=f"s3-untrusted-{uuid.uuid4().hex[:6]}")
    started = time.monotonic()
    try:
        async with HCPClient(endpoint=emulator.base_url, username="archivist", password=PASSWORD,
                             ca_bundle=str(ca), max_retries=4, retry_base_delay=1.0) as client:
            with pytest.raises(CertificateError) as info:
                await run(client, tracker)
            assert client.data.retries == 0, "never retried as if transient"
        assert tracker.error_details() == [], "no file failed one by one"
        assert tracker.done_keys() == set()
    finally:
        tracker.close()
    assert time.monotonic() - started < 5
    _assert_names_the_s3_certificate(info.value, emulator)


@pytest.mark.timeout(60)
async def test_an_untrusted_s3_certificate_stops_an_engine_upload_at_the_first_file(
    split_emulator: HCPEmulator, tls_files: dict[str, Path], tmp_path: Path
) -> None:
    bucket = split_emulator.create_bucket(f"s3tls-{uuid.uuid4().hex[:10]}")
    source = _source(tmp_path / "src", 40)
    await _engine_stops_at_once(split_emulator, tls_files["ca"], tmp_path, lambda client, tracker: engine_upload(
        BulkUploadConfig(client=client, bucket=bucket, source_dir=source, tracker=tracker, workers=4)))
    assert split_emulator.stored(bucket) == {}


@pytest.mark.timeout(60)
async def test_an_untrusted_s3_certificate_stops_an_engine_download_and_leaves_no_file(
    split_emulator: HCPEmulator, tls_files: dict[str, Path], tmp_path: Path
) -> None:
    bucket = _seeded_bucket(split_emulator, "p/", 30)
    dest = tmp_path / "dest"
    await _engine_stops_at_once(split_emulator, tls_files["ca"], tmp_path, lambda client, tracker: engine_download(
        BulkDownloadConfig(client=client, bucket=bucket, prefix="p/", dest_dir=dest, tracker=tracker, workers=4)))
    assert _files(dest) == []


@pytest.mark.timeout(60)
async def test_an_untrusted_s3_certificate_stops_an_audit_instead_of_failing_each_object(
    split_emulator: HCPEmulator, tls_files: dict[str, Path], tmp_path: Path
) -> None:
    bucket = _seeded_bucket(split_emulator, "p/", 30)
    hashed: list[str | None] = []
    await _engine_stops_at_once(split_emulator, tls_files["ca"], tmp_path, lambda client, tracker: hash_objects(
        client, bucket, prefix="p/", workers=4, on_hashed=lambda key, digest, error: hashed.append(error)))
    assert hashed == [], "no object reported as failed one by one"


def _files(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()] if folder.exists() else []


async def _flow_failed_at_once(state: Any, elapsed: float, emulator: HCPEmulator, *, tasks: bool) -> None:
    """A flow run that met the untrusted S3 certificate: failed with the ``CertificateError``
    (not "N files failed") within seconds, and no secret in its logs, artifacts or states."""
    assert state.is_failed()
    with pytest.raises(CertificateError) as info:
        await state.result()
    _assert_names_the_s3_certificate(info.value, emulator)
    assert PROBLEM in (state.message or "")
    assert elapsed < 10, f"failed after {elapsed:.1f} s: each file tried, or retried as if transient?"
    for text in await _prefect_texts(state, tasks=tasks):
        assert PASSWORD not in text and "Signature=" not in text and not FORBIDDEN.search(text), text[:300]


@pytest.mark.timeout(240)
async def test_a_bulk_upload_flow_whose_s3_certificate_is_untrusted_fails_in_seconds_and_writes_nothing(
    prefect_api: None, split_emulator: HCPEmulator, tls_files: dict[str, Path], tmp_path: Path
) -> None:
    """The API trusted through ``ca_bundle``, the S3 endpoint not: the final prefix holds nothing."""
    bucket = split_emulator.create_bucket(f"s3tls-{uuid.uuid4().hex[:10]}")
    source = _source(tmp_path / "src", 60)
    blocks = await _save_blocks(split_emulator, tmp_path, ca_bundle=tls_files["ca"])
    started = time.monotonic()
    state = await bulk_upload(source_dir=str(source), bucket=bucket, prefix="night/", return_state=True, **blocks)
    await _flow_failed_at_once(state, time.monotonic() - started, split_emulator, tasks=True)
    assert split_emulator.stored(bucket, "night/") == {}
    assert split_emulator.stored(bucket) == {}, "nothing staged either"


@pytest.mark.timeout(240)
async def test_a_bulk_download_flow_whose_s3_certificate_is_untrusted_fails_in_seconds_and_writes_no_file(
    prefect_api: None, split_emulator: HCPEmulator, tls_files: dict[str, Path], tmp_path: Path
) -> None:
    """The flow meets the S3 certificate first when it reads the prefix's fixity record (a
    presigned GET), before any batch: it stops there, at once. The engine's own stop at its
    first file is the engine test above."""
    bucket = _seeded_bucket(split_emulator, "night/", 40)
    blocks = await _save_blocks(split_emulator, tmp_path, ca_bundle=tls_files["ca"])
    dest = tmp_path / "dest"
    started = time.monotonic()
    state = await bulk_download(bucket=bucket, prefix="night/", dest_dir=str(dest), return_state=True, **blocks)
    await _flow_failed_at_once(state, time.monotonic() - started, split_emulator, tasks=False)
    assert _files(dest) == []


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
