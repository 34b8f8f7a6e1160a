"""Every command block of the README runs, as written, so none can go stale.

The ```python blocks run against the emulator and a Prefect API (``prefect_test_harness``). Blocks run in order in one namespace (later ones use the blocks and the
bucket earlier ones created), in a scratch folder. A block whose first line names a file
(``# conftest.py``, ``# test_archive.py``) is written to that file instead, and pytest runs
those files in a folder of their own, as a user's test suite would. A block whose first line
names a file of ``flows/`` (``# flows/nightly_archive.py``) is that file, shown in the README:
it must equal the file, and runs as ``python flows/<file>`` would (as ``__main__``).

The ```bash blocks (and the ```yaml file they deploy) run in README order in one shell folder,
against one real ``prefect server`` (on PostgreSQL), the emulator and a ``prefect worker``
started by the README's own worker block: setup, the bucket (the README's Python block), the
worker, the runs, the schedule with its parameters (read back from the server), the audit and
the errors listing; the bucket, the restored folder and the schedule are checked after. The
only change to a block is the emulator's address for ``127.0.0.1:8000``. A block not run here
is in ``NOT_RUN_HERE`` with the reason (the test where it runs); a new block must be one or
the other.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rahcp_prefect.testing.postgres import fresh_database
from rahcp_prefect.testing.prefect_fixtures import make_tree
from rahcp_prefect.testing.prefect_server import BIN, asyncpg_url, running_server, stop
from rahcp_prefect.testing.storage import empty_bucket
from rahcp_prefect.testing.records import without_records

PROJECT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)
FILE_BLOCK = re.compile(r"^# ((?:conftest|test_\w+)\.py)\n")
FLOWS_FILE_BLOCK = re.compile(r"^# (flows/\w+\.py)\n")
BASH_FENCE = re.compile(r"^```bash\n(.*?)^```$", re.DOTALL | re.MULTILINE)
YAML_FENCE = re.compile(r"^```yaml\n(.*?)^```$", re.DOTALL | re.MULTILINE)
YAML_FILE_BLOCK = re.compile(r"^# ([\w-]+\.yaml)\n")
README_ENDPOINT = "http://127.0.0.1:8000/api/v1"
"""The HCP the README's commands name (``rahcp-prefect emulator --port 8000``); the test's
emulator listens elsewhere."""

AUDIT_DEPLOY = re.compile(r"^ +(prefect --no-prompt deploy flows/archive_with_audit\.py.*?)\n\"\"\"", re.DOTALL | re.MULTILINE)

NOT_RUN_HERE = {
    "make demo": "make demo runs `python -m rahcp_prefect.demo`, which tests/packaging/test_demo.py runs (smaller); "
                 "make test is the suite this test is part of",
    "pip install .": "tests/packaging/test_wheel.py builds the wheel from the checkout (`pip wheel --no-deps`) and "
                     "installs it into a fresh venv; `make venv` installs the checkout itself (`pip install -e`)",
    "push_to_hcp": "tests/integration/test_pipeline_e2e.py deploys a project with these push/pull steps through a "
                   "real server and worker",
}
"""Blocks run by another test (a substring of the block -> why, and where)."""


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
    prefect_api: None, hcp_emulator: Any, readme_bucket: str, hcp_credentials: dict[str, Any], tmp_path: Path,
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


def _blocks(fence: re.Pattern[str]) -> list[str]:
    return fence.findall((PROJECT / "README.md").read_text())


def _not_run_here(block: str) -> str | None:
    return next((why for needle, why in NOT_RUN_HERE.items() if needle in block), None)


def test_each_block_not_run_here_names_where_it_runs() -> None:
    blocks = _blocks(BASH_FENCE) + _blocks(YAML_FENCE)
    for needle, why in NOT_RUN_HERE.items():
        assert any(needle in block for block in blocks), f"no README block holds {needle!r} any more"
        for test_file in re.findall(r"tests/[\w/]+\.py", why):
            assert (PROJECT / test_file).is_file(), test_file
    assert "pip install rahcp-prefect" not in (PROJECT / "README.md").read_text(), "no release is published"


@pytest.fixture
def readme_bucket(hcp_emulator: Any) -> Iterator[str]:
    """The README's bucket ``archive``, absent before and after (another README test uses it)."""
    def drop() -> None:
        try:
            empty_bucket(hcp_emulator.s3, "archive")
            hcp_emulator.s3.delete_bucket(Bucket="archive")
        except Exception:  # noqa: BLE001 - absent is what we want
            pass

    drop()
    yield "archive"
    drop()


def _shell(block: str, cwd: Path, env: dict[str, str], timeout: float = 420) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_every_shell_block_of_the_readme_runs_against_a_real_server_and_worker(
    postgres_dsn: str, hcp_emulator: Any, readme_bucket: str, tmp_path: Path
) -> None:
    scratch, home = tmp_path / "shell", tmp_path / "home"
    scratch.mkdir()
    home.mkdir()
    files = make_tree(scratch / "scans", 6)
    python_bucket_block = next(block for block in python_blocks() if "create_bucket(" in block)
    ran: list[str] = []
    with fresh_database(postgres_dsn) as dsn, running_server(asyncpg_url(dsn), tmp_path / "server") as server:
        env = {k: v for k, v in server.items() if not k.startswith("HCP_")}
        env.update(HOME=str(home), PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
        for block in _blocks(YAML_FENCE):
            if (named := YAML_FILE_BLOCK.match(block)) is not None:
                (scratch / named.group(1)).write_text(block)
        worker: subprocess.Popen[Any] | None = None
        try:
            for block in _blocks(BASH_FENCE):
                if _not_run_here(block):
                    continue
                command = block.replace(README_ENDPOINT, hcp_emulator.base_url)
                if command.lstrip().startswith("prefect worker start"):
                    log = (tmp_path / "worker.log").open("wb")
                    worker = subprocess.Popen(["bash", "-c", command], cwd=tmp_path, env=env, stdout=log,
                                              stderr=subprocess.STDOUT, start_new_session=True)
                    ran.append(block)
                    continue
                done = _shell(command, scratch, env)
                worker_log = (tmp_path / "worker.log").read_text(errors="replace")[-3000:] if worker else ""
                assert done.returncode == 0, f"README block failed:\n{block}\n{done.stdout[-3000:]}{done.stderr[-3000:]}{worker_log}"
                ran.append(block)
                if "rahcp-prefect setup" in block:  # step 2, the bucket: the README's Python block, as written
                    made = subprocess.run([sys.executable, "-c", python_bucket_block], cwd=scratch, env=env,
                                          capture_output=True, text=True, timeout=300)
                    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-3000:]
            api = server["PREFECT_API_URL"]
            deployment = httpx.get(f"{api}/deployments/name/bulk-upload/nightly-scans", timeout=30).json()
            # the deploy command flows/archive_with_audit.py shows, from the checkout, as written
            deploy = AUDIT_DEPLOY.search((PROJECT / "flows" / "archive_with_audit.py").read_text())
            assert deploy is not None
            done = _shell(re.sub(r"\\+\n\s*", " ", deploy.group(1)), PROJECT, env)  # the docstring's line break
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
            audit = httpx.get(f"{api}/deployments/name/archive-with-audit/nightly", timeout=30).json()
        finally:
            if worker is not None:
                os.killpg(worker.pid, signal.SIGTERM)  # the worker's shell and the worker it started
                stop(worker)
    assert len(ran) == len([b for b in _blocks(BASH_FENCE) if not _not_run_here(b)]) >= 6
    # what the blocks did: the bucket holds the source, the download restored it, the schedule has its parameters
    listed = hcp_emulator.s3.list_objects_v2(Bucket="archive", Prefix="2026/").get("Contents", [])
    assert set(without_records(dict.fromkeys(item["Key"] for item in listed), "2026/")) == {f"2026/{rel}" for rel in files}
    for rel, content in files.items():
        assert (scratch / "restored" / rel).read_bytes() == content
    (schedule,) = deployment["schedules"]
    assert schedule["schedule"]["cron"] == "0 3 * * *"
    assert schedule["parameters"] == {"source_dir": "/data/scans", "bucket": "archive", "prefix": "nightly/"}
    assert (home / ".rahcp" / "tracker.db").is_file(), "setup's default tracker"
    required = {"source_dir", "bucket", "prefix"}  # archive_with_audit's parameters without a default
    assert required <= set(audit["parameters"]) and audit["parameters"]["bucket"] == "archive", audit["parameters"]
