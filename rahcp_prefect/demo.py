"""The main job, end to end on one machine: ``make demo`` (``python -m rahcp_prefect.demo``).

Starts the embedded HCP emulator (over a real moto S3 server) unless ``HCP_ENDPOINT`` points
at a real one (``HCP_USERNAME``, ``HCP_PASSWORD``), creates the bucket (``--bucket``, default a new
``demo-<id>``) through that HCP's API when it is missing, makes sample data, runs the ``bulk-upload`` flow (staging, verify, commit) and
the ``bulk-download`` flow, checks every byte, and prints where to look. Flows run against
``PREFECT_API_URL`` when set (so they show in your Prefect UI), else a temporary local server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pydantic import SecretStr

from rahcp_prefect.client.sizes import format_bytes

if TYPE_CHECKING:
    from prefect.client.schemas.objects import State

    from rahcp_prefect.blocks import HCPCredentials

MIB = 1024 * 1024
WORK_DIR = Path(".rahcp-demo")


def make_sample_data(root: Path, small_files: int, large_mib: int) -> dict[str, str]:
    """Small files in nested folders plus one large file (multipart); returns sha256 by path."""
    root.mkdir(parents=True, exist_ok=True)
    digests: dict[str, str] = {}
    for index in range(small_files):
        rel = f"scans/box-{index % 5:02d}/page-{index:05d}.txt"
        content = f"page {index} of the demo archive\n".encode() * (1 + index % 40)
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        digests[rel] = hashlib.sha256(content).hexdigest()
    if large_mib:
        rel = "video/large-reel.bin"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        block = os.urandom(MIB)
        digest = hashlib.sha256()
        with path.open("wb") as handle:
            for _ in range(large_mib):
                handle.write(block)
                digest.update(block)
        digests[rel] = digest.hexdigest()
    return digests


def check_download(dest: Path, digests: dict[str, str]) -> list[str]:
    """Paths whose downloaded bytes differ from the source (empty when all match)."""
    bad = []
    for rel, expected in digests.items():
        path = dest / rel
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != expected:
            bad.append(rel)
    return bad


def check_manifest(dest: Path, digests: dict[str, str]) -> tuple[bool, str]:
    """Whether the job's manifest (downloaded with the files) lists exactly the source's digests,
    and what was found."""
    from rahcp_prefect.job.manifest import MANIFEST_NAME, ManifestError, parse_manifest

    path = dest / MANIFEST_NAME
    if not path.is_file():
        return False, f"{MANIFEST_NAME} missing"
    try:
        listed = parse_manifest(path.read_bytes(), MANIFEST_NAME)
    except ManifestError as exc:
        return False, str(exc)
    if listed != digests:
        wrong = sorted(set(listed) ^ set(digests)) + sorted(k for k in listed.keys() & digests if listed[k] != digests[k])
        return False, f"{MANIFEST_NAME} differs for {len(wrong)} file(s): {wrong[:5]}"
    return True, f"{MANIFEST_NAME} lists all {len(digests)} with their SHA-256: OK"


@contextlib.contextmanager
def hcp_endpoint() -> Iterator[tuple[str, str, str, Any]]:
    """``(endpoint, username, password, emulator or None)``: real HCP from env, else embedded."""
    if os.environ.get("HCP_ENDPOINT"):
        yield (
            os.environ["HCP_ENDPOINT"],
            os.environ.get("HCP_USERNAME", ""),
            os.environ.get("HCP_PASSWORD", ""),
            None,
        )
        return
    from rahcp_prefect.testing import HCPEmulator

    with HCPEmulator() as emulator:
        yield emulator.base_url, "demo", "demo-password", emulator


@contextlib.contextmanager
def prefect_api() -> Iterator[str]:
    """The Prefect API to use: ``PREFECT_API_URL`` if set, else a temporary local server."""
    if os.environ.get("PREFECT_API_URL"):
        yield os.environ["PREFECT_API_URL"]
        return
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield "a temporary local Prefect server (set PREFECT_API_URL to keep the runs)"


async def ensure_bucket(credentials: HCPCredentials, bucket: str) -> bool:
    """Create ``bucket`` through the API of the HCP the credentials reach (emulator or real)
    unless it is there; True when it was created."""
    async with credentials.get_client() as client:
        if bucket in {found["Name"] for found in (await client.s3.list_buckets())["buckets"]}:
            return False
        await client.s3.create_bucket(bucket)
        return True


async def run(args: argparse.Namespace) -> int:
    from rahcp_prefect.blocks import HCPCredentials, HCPTracker, HCPTransferSettings
    from rahcp_prefect.flows import bulk_download, bulk_upload
    from rahcp_prefect.flows.naming import run_link

    work = args.work_dir.resolve()
    if work.exists():
        shutil.rmtree(work)
    source, dest = work / "source", work / "downloaded"
    print(f"Making sample data in {source} ...", flush=True)
    digests = make_sample_data(source, args.files, args.large_mib)

    with hcp_endpoint() as (endpoint, username, password, emulator), prefect_api() as api:
        bucket = args.bucket or f"demo-{uuid.uuid4().hex[:8]}"
        if emulator is not None:
            print(f"Embedded HCP emulator at {endpoint} (S3 at {emulator.s3_endpoint})", flush=True)
        credentials = HCPCredentials(endpoint=endpoint, username=username, password=SecretStr(password))
        created = await ensure_bucket(credentials, bucket)
        print(f"Bucket {bucket} {'created' if created else 'exists'} on {endpoint}", flush=True)
        await credentials.save("hcp-demo", overwrite=True)
        await HCPTransferSettings(multipart_threshold=16 * MIB, multipart_chunk=8 * MIB, workers=16).save(
            "hcp-demo-settings", overwrite=True
        )
        await HCPTracker(sqlite_path=str(work / "tracker.db")).save("hcp-demo-tracker", overwrite=True)
        blocks = {
            "credentials_block": "hcp-demo",
            "settings_block": "hcp-demo-settings",
            "tracker_block": "hcp-demo-tracker",
        }
        # return_state=True: the flow call gives its final State (Prefect's stubs type the result)
        up_state = cast("State[Any]", await bulk_upload(
            source_dir=str(source), bucket=bucket, prefix="archive/", return_state=True, **blocks
        ))
        up = await up_state.result()
        print(f"bulk-upload run:   {run_link(up_state.state_details.flow_run_id)}", flush=True)
        down_state = cast("State[Any]", await bulk_download(
            bucket=bucket, dest_dir=str(dest), prefix="archive/", return_state=True, **blocks
        ))
        down = await down_state.result()
        print(f"bulk-download run: {run_link(down_state.state_details.flow_run_id)}", flush=True)
        links = [run_link(s.state_details.flow_run_id) for s in (up_state, down_state)]

    bad = check_download(dest, digests)
    manifest_ok, manifest = check_manifest(dest, digests)
    print()
    print(f"bulk-upload:   {up['ok']} files, {format_bytes(up['bytes'])}, {up['outcome']} to {bucket}/archive/ in {up['elapsed']} s")
    print(
        f"bulk-download: {down['ok']} files (the {len(digests)}, the job's manifest and times) into {dest} "
        f"in {down['elapsed']} s, {down.get('verified', 0)} verified by checksum"
    )
    print(f"Byte-for-byte check of {len(digests)} files: {'OK' if not bad else f'{len(bad)} differ: {bad[:5]}'}")
    print(f"Manifest check: {manifest}")
    print("Where to look:")
    print(f"  source files      {source}")
    print(f"  downloaded files  {dest}")
    print(f"  transfer tracker  {work / 'tracker.db'} (SQLite: jobs and per-file outcomes)")
    print(f"  upload run        {links[0]}")
    print(f"  download run      {links[1]}")
    print(f"  Prefect API       {api}")
    return 0 if not bad and manifest_ok else 1


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=500, help="small sample files (default 500)")
    parser.add_argument("--large-mib", type=int, default=40, help="size of the large file in MiB (default 40)")
    parser.add_argument("--bucket", default=None, help="bucket to use, created when missing (default: a new demo-<id>)")
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR, help="where sample and downloaded data go")
    args = parser.parse_args(argv)
    if args.files < 0 or args.large_mib < 0:
        parser.error("--files and --large-mib must be >= 0")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
