"""Every ```python block of the README runs, as written, against the emulator and a real Prefect
API, so none can go stale. Blocks run in order in one namespace (later ones use the blocks and the
bucket earlier ones created), in a scratch folder. A block whose first line names a file
(``# conftest.py``, ``# test_archive.py``) is written to that file instead, and pytest runs
those files in a folder of their own, as a user's test suite would. A block whose first line
names a file of ``flows/`` (``# flows/nightly_archive.py``) is that file, shown in the README:
it must equal the file, and runs as ``python flows/<file>`` would (as ``__main__``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PROJECT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)
FILE_BLOCK = re.compile(r"^# ((?:conftest|test_\w+)\.py)\n")
FLOWS_FILE_BLOCK = re.compile(r"^# (flows/\w+\.py)\n")


def python_blocks() -> list[str]:
    return FENCE.findall((PROJECT / "README.md").read_text())


def test_the_readme_has_python_blocks_for_each_step() -> None:
    code = "\n".join(python_blocks())
    for needed in ("HCPCredentials(", ".save(\"hcp\"", "create_bucket(", "async def nightly_archive",
                   "def nightly_archive_sync", "pytest_plugins", "bulk_download("):
        assert needed in code, needed


def test_the_readme_shows_the_flows_files_as_they_are() -> None:
    shown = {m.group(1): block for block in python_blocks() if (m := FLOWS_FILE_BLOCK.match(block))}
    assert set(shown) == {"flows/nightly_archive.py", "flows/nightly_archive_sync.py"}
    for path, block in shown.items():
        assert block == (PROJECT / path).read_text(), f"README's {path} differs from the file"


def test_every_python_block_of_the_readme_runs(
    prefect_api: None, hcp_emulator: Any, hcp_credentials: dict[str, Any], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HCP_ENDPOINT", hcp_credentials["endpoint"])
    monkeypatch.setenv("HCP_USERNAME", hcp_credentials["username"])
    monkeypatch.setenv("HCP_PASSWORD", hcp_credentials["password"])
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.chdir(scratch)
    suite = tmp_path / "suite"
    suite.mkdir()
    namespace: dict[str, Any] = {"__name__": "__readme__"}
    run = 0
    for number, block in enumerate(python_blocks(), start=1):
        named = FILE_BLOCK.match(block)
        if named:
            (suite / named.group(1)).write_text(block)
            continue
        flows_file = FLOWS_FILE_BLOCK.match(block)
        namespace["__name__"] = "__main__" if flows_file else "__readme__"
        try:
            exec(compile(block, flows_file.group(1) if flows_file else f"README.md python block {number}", "exec"),
                 namespace)  # noqa: S102
        except Exception as exc:
            pytest.fail(f"README python block {number} failed: {type(exc).__name__}: {exc}\n{block}")
        run += 1
    assert run >= 5
    # What the blocks did, seen in the emulator's S3: the async and the sync flow both uploaded.
    keys = {item["Key"] for item in hcp_emulator.s3.list_objects_v2(Bucket="archive").get("Contents", [])}
    assert {"2026/box-1/page-1.txt", "2026/MANIFEST.txt", "sync/box-1/page-1.txt"} <= keys
    assert (scratch / "restore" / "box-1" / "page-1.txt").read_text() == "page one\n"

    assert sorted(p.name for p in suite.iterdir()) == ["conftest.py", "test_archive.py"]
    (suite / "pytest.ini").write_text("[pytest]\nasyncio_mode = auto\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(suite)],
                            cwd=suite, env=env, capture_output=True, text=True, timeout=540)
    assert result.returncode == 0 and "1 passed" in result.stdout, result.stdout[-4000:] + result.stderr[-2000:]
