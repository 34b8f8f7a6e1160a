"""The README's main command (`make demo` runs `python -m rahcp_prefect.demo`), run as a person
runs it, smaller: both flows against the embedded emulator, every byte and the manifest checked."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

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
