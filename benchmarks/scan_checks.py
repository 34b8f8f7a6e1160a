"""What the upload walk's per-file checks cost: odd names, key length, never-upload paths.

    python -m benchmarks.scan_checks [--files 20000] [--repeat 5]

Walks a tree of ``--files`` small files (100 folders, a tenth of the names non-ASCII) with
``scan_tree`` as the upload flow does (``SourceGuard``: key room under a 52-byte staging
prefix, the tracker's files and download folders left out), and as the reference the same walk
without the guard (names are checked for UTF-8 either way, as before). Runs alternate; prints
one JSON line with both medians in microseconds per file and ``ratio`` (guarded / plain: 1.0
means free). The files' stat calls dominate both.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from rahcp_prefect.bulk.exclusions import NeverUpload
from rahcp_prefect.bulk.scanner import scan_tree
from rahcp_prefect.bulk.validation import key_room

STAGING = ".rahcp-staging/" + "0" * 36 + "/"


def build(root: Path, files: int) -> None:
    for index in range(files):
        folder = root / f"dir-{index % 100:03d}"
        folder.mkdir(exist_ok=True)
        name = f"scan-ünï-{index:06d}.tif" if index % 10 == 0 else f"scan-{index:06d}.tif"
        (folder / name).write_bytes(b"x")
    (root / "state").mkdir()
    (root / "state" / "tracker.db").write_bytes(b"")


def walk(root: Path, guarded: bool) -> tuple[float, int]:
    options = {}
    if guarded:
        skip = NeverUpload(root, [root / "state" / "tracker.db"], [root / "restored"], warn=lambda _: None)
        options = {"skip": skip, "key_room": key_room(STAGING, "archive/2026/")}
    started = time.perf_counter()
    count = sum(1 for _ in scan_tree(root, **options))  # type: ignore[arg-type]
    return time.perf_counter() - started, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="scan-checks-"))
    try:
        build(root, args.files)
        walk(root, True)  # warm the dentry cache for both
        plain: list[float] = []
        guarded: list[float] = []
        for _ in range(args.repeat):
            seconds, plain_count = walk(root, False)
            plain.append(seconds)
            seconds, guarded_count = walk(root, True)
            guarded.append(seconds)
        assert guarded_count == args.files and plain_count == args.files + 1, (guarded_count, plain_count)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    ours, reference = statistics.median(guarded), statistics.median(plain)
    print(json.dumps({
        "benchmark": "scan_checks",
        "files": args.files,
        "guarded_us_per_file": round(ours / args.files * 1e6, 2),
        "plain_us_per_file": round(reference / args.files * 1e6, 2),
        "ratio": round(ours / reference, 3),
        "reference": "the same walk without SourceGuard (no key-length check, no never-upload paths)",
    }))


if __name__ == "__main__":
    main()
