"""What ``HCPBucket`` costs over the engine and the SDK it is built on.

    python -m benchmarks.bucket_folder [--files 1000] [--size 10240] [--loop-files 100] [--results 50]

Against the in-process emulator (a real moto S3 server behind the HCP API):

* ``bucket-put-directory``: ``HCPBucket.aput_directory`` of ``--files`` files; the reference
  (floor) is the bulk engine alone (``bulk_upload`` with a client and tracker already open), so
  the ratio is what the block adds (a login, a throw-away SQLite tracker). ``per_file_loop`` is
  the first ``--loop-files`` files through ``aupload_from_path`` one at a time (what the block
  does not do), its ratio per file against the engine's time per file.
* ``bucket-get-directory``: the same for ``aget_directory`` against ``bulk_download``.
* ``bucket-write-path``: ``--results`` small results through ``awrite_path`` (a client per
  call, as Prefect's result store calls it; the block reuses its last login's token) against
  one logged-in client uploading them.

Prints one JSON line per scenario with both times and ``ratio`` (ours / reference seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from rahcp_prefect.blocks import HCPBucket, HCPCredentials, HCPTransferSettings
from rahcp_prefect.bulk import BulkDownloadConfig, BulkUploadConfig, bulk_download, bulk_upload
from rahcp_prefect.testing.emulator import HCPEmulator
from rahcp_prefect.tracker import create_tracker


def make_files(root: Path, count: int, size: int) -> None:
    for index in range(count):
        path = root / f"d{index % 10}" / f"f{index:05d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes([index % 251]) * size)


async def engine_alone(bucket: HCPBucket, direction: str, folder: Path, prefix: str, scratch: Path) -> float:
    """The floor: the engine with a client and a tracker opened before the clock starts."""
    settings = bucket.settings or HCPTransferSettings()
    tracker = create_tracker(scratch / f"{direction}-{prefix.strip('/')}.db", job=prefix)
    try:
        async with bucket.credentials.get_client(settings) as client:
            options = settings.engine_options(direction)
            started = time.perf_counter()
            if direction == "upload":
                stats = await bulk_upload(BulkUploadConfig(
                    client=client, bucket=bucket.bucket_name, source_dir=folder, tracker=tracker,
                    prefix=prefix, skip_existing=False, **options,
                ))
            else:
                stats = await bulk_download(BulkDownloadConfig(
                    client=client, bucket=bucket.bucket_name, dest_dir=folder, tracker=tracker,
                    prefix=prefix, **options,
                ))
            elapsed = time.perf_counter() - started
    finally:
        tracker.close()
    if stats.errors:
        raise RuntimeError(f"engine {direction}: {stats.errors} error(s)")
    return elapsed


async def timed(coroutine: Any) -> float:
    started = time.perf_counter()
    await coroutine
    return time.perf_counter() - started


async def main(files: int, size: int, loop_files: int, results: int) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    with HCPEmulator() as emulator, tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        name = emulator.create_bucket("bucket-bench")
        block = HCPBucket(
            bucket_name=name,
            credentials=HCPCredentials(endpoint=emulator.base_url, username="bench", password=SecretStr("bench")),
        )
        source = scratch / "source"
        make_files(source, files, size)
        paths = sorted(path for path in source.rglob("*") if path.is_file())

        reference = await engine_alone(block, "upload", source, "ref/", scratch)
        ours = await timed(block.aput_directory(str(source), "ours"))

        async def per_file() -> None:
            for path in paths[:loop_files]:
                await block.aupload_from_path(path, f"loop/{path.relative_to(source).as_posix()}")

        loop = await timed(per_file())
        lines.append({
            "scenario": "bucket-put-directory", "files": files, "bytes_per_file": size,
            "ours": {"seconds": round(ours, 2), "files_per_s": round(files / ours, 1)},
            "reference": {"what": "bulk engine alone", "seconds": round(reference, 2),
                          "files_per_s": round(files / reference, 1)},
            "per_file_loop": {"files": loop_files, "seconds": round(loop, 2),
                              "ratio": round((loop / loop_files) / (reference / files), 3)},
            "ratio": round(ours / reference, 3),
        })

        reference = await engine_alone(block, "download", scratch / "ref-down", "ours/", scratch)
        ours = await timed(block.aget_directory("ours", str(scratch / "ours-down")))
        lines.append({
            "scenario": "bucket-get-directory", "files": files, "bytes_per_file": size,
            "ours": {"seconds": round(ours, 2), "files_per_s": round(files / ours, 1)},
            "reference": {"what": "bulk engine alone", "seconds": round(reference, 2),
                          "files_per_s": round(files / reference, 1)},
            "ratio": round(ours / reference, 3),
        })

        payload = b'{"result": 42}' * 20

        async def one_client() -> None:
            async with block.credentials.get_client() as client:
                for index in range(results):
                    await client.s3.upload(name, f"raw/{index}.json", payload)

        reference = await timed(one_client())

        async def through_block() -> None:
            for index in range(results):
                await block.awrite_path(f"results/{index}.json", payload)

        ours = await timed(through_block())
        lines.append({
            "scenario": "bucket-write-path", "results": results, "bytes_per_result": len(payload),
            "ours": {"seconds": round(ours, 2), "ms_per_result": round(ours / results * 1000, 1)},
            "reference": {"what": "one logged-in client", "seconds": round(reference, 2),
                          "ms_per_result": round(reference / results * 1000, 1)},
            "ratio": round(ours / reference, 3),
        })
    return lines


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--size", type=int, default=10240)
    parser.add_argument("--loop-files", type=int, default=100)
    parser.add_argument("--results", type=int, default=50)
    args = parser.parse_args()
    for line in asyncio.run(main(args.files, args.size, min(args.loop_files, args.files), args.results)):
        print(json.dumps(line))
