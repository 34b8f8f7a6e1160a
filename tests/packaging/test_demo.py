"""The README's main command (`make demo` runs `python -m rahcp_prefect.demo`), run as a person
runs it, smaller: both flows against the embedded emulator, every byte and the manifest checked."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest


@pytest.mark.slow
def test_the_demo_uploads_downloads_and_checks_every_byte_and_the_manifest(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HCP_", "PREFECT_API_"))}
    work = tmp_path / "work"
    done = subprocess.run(
        [sys.executable, "-m", "rahcp_prefect.demo", "--files", "20", "--large-mib", "20", "--work-dir", str(work)],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    assert re.search(r"bulk-upload: +21 files, 20\.0 MiB, committed to demo-[0-9a-f]{8}/archive/", out), out
    assert "bulk-download: 23 files (the 21, the job's manifest and times)" in out and "23 verified by checksum" in out
    assert "Byte-for-byte check of 21 files: OK" in out
    assert "Manifest check: manifest-sha256.txt lists all 21 with their SHA-256: OK" in out
    assert len(re.findall(r"(upload|download) run +http://127\.0\.0\.1:\d+/runs/flow-run/[0-9a-f-]{36}", out)) == 2
    assert (work / "downloaded" / "video" / "large-reel.bin").stat().st_size == 20 * 1024 * 1024


@pytest.mark.slow
def test_the_demo_against_another_hcp_creates_its_bucket_there(tmp_path: Path, hcp_emulator: Any) -> None:
    """With ``HCP_ENDPOINT`` the demo starts no emulator of its own: the bucket it is given is
    created through that HCP's API (here a separate emulator, as a real HCP would be)."""
    bucket = f"demo-given-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HCP_", "PREFECT_API_"))}
    env.update(HCP_ENDPOINT=hcp_emulator.base_url, HCP_USERNAME="someone", HCP_PASSWORD="secret-pw")
    done = subprocess.run(
        [sys.executable, "-m", "rahcp_prefect.demo", "--files", "3", "--large-mib", "0", "--bucket", bucket,
         "--work-dir", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    assert f"Bucket {bucket} created on {hcp_emulator.base_url}" in out and "Embedded HCP emulator" not in out
    listed = hcp_emulator.s3.list_objects_v2(Bucket=bucket, Prefix="archive/").get("Contents", [])
    assert len(listed) == 3 + 4  # the files; the commit's record and the manifest, each with its times
    assert "secret-pw" not in out + done.stderr
