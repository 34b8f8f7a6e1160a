"""Interruption is not failure: a SIGTERM (what a worker sends on cancel, Kubernetes on
eviction) or SIGINT to a flow run's process mid-upload keeps staging and the done marks,
releases the job lease, and ends the run promptly as Crashed/Cancelled, never rolled back;
the next run sends only what is missing. The same at the worst moments: mid-commit (the rerun
finishes the commit) and mid-download (the destination untouched, the rerun fetches the rest).

Each interrupted run is a child process (``python -c``) on the session's Prefect API; the rerun
runs in-process. A data-plane delay keeps the upload going long enough to interrupt it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from rahcp_prefect.flows import bulk_download, bulk_upload
from rahcp_prefect.job import STAGING_ROOT, staging_dir_for
from rahcp_prefect.testing.prefect_fixtures import SavedBlocks
from rahcp_prefect.tracker import JobState

from .helpers import (
    bucket_hashes,
    bucket_listing,
    data_requests,
    job_tracker,
    landed_hashes,
    put_objects,
    signal_flow_when,
    tree_hashes,
    with_lease,
    without_manifest,
)

FILES = 60
LEASE = 120.0  # long: a lease seen free right after the run ended was released, not expired
GRACE = 10.0  # the run must be gone well inside the 30 s a worker or Kubernetes allows


@pytest.fixture
async def blocks(saved_blocks: SavedBlocks) -> SavedBlocks:
    return await with_lease(saved_blocks, LEASE)


def _source(root: Path, files: int = FILES) -> dict[str, str]:
    for index in range(files):
        path = root / f"d{index % 3}" / f"f{index:03d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"file {index}\n".encode() * (1 + index % 40))
    return tree_hashes(root)


async def _flow_run_state(source_dir: str) -> str:
    """The state type of the (one) flow run of this source folder, read from the Prefect API."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        runs = await client.read_flow_runs(limit=200)
    mine = [run for run in runs if (run.parameters or {}).get("source_dir") == source_dir]
    assert len(mine) == 1, [run.name for run in runs]
    assert mine[0].state is not None
    return mine[0].state.type.value


def _check_committed(emulator: Any, bucket: str, expected: dict[str, str]) -> None:
    """The final prefix holds the source byte for byte (beside the job's tag files); staging is empty."""
    assert without_manifest(bucket_hashes(emulator, bucket, "final/")) == {
        f"final/{rel}": digest for rel, digest in expected.items()
    }
    assert bucket_listing(emulator, bucket, STAGING_ROOT) == []


@pytest.mark.timeout(180)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
async def test_a_signal_mid_upload_keeps_staging_and_the_rerun_sends_only_what_is_missing(
    blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path, sig: int
) -> None:
    expected = _source(tmp_path / "src")
    params = {"source_dir": str(tmp_path / "src"), "bucket": hcp_bucket, "prefix": "final/", **blocks.params()}
    hcp_emulator.faults.add("data", method="PUT", delay=0.3, count=None)
    code, took = signal_flow_when(
        "upload", params, tmp_path / "run.log", lambda: data_requests(hcp_emulator, "PUT") >= FILES // 3, sig
    )
    hcp_emulator.faults.clear()
    time.sleep(0.5)  # PUTs the run abandoned finish on the server side
    log = (tmp_path / "run.log").read_text()
    assert code != 0 and took < GRACE, f"exit {code} after {took:.1f} s: {log[-3000:]}"
    assert "RESULT" not in log
    assert "rolled back" not in log and "deleted" not in log, log[-3000:]

    job = f"bulk-upload:{hcp_bucket}/final/"
    staged = dict(bucket_listing(hcp_emulator, hcp_bucket, STAGING_ROOT))
    assert bucket_listing(hcp_emulator, hcp_bucket, "final/") == [], "nothing visible before the commit"
    assert FILES // 3 - 8 <= len(staged) < FILES, "staging kept"
    with job_tracker(blocks.tracker_path, job) as tracker:
        info = tracker.job_info()
        assert info is not None and info.state == JobState.open, "not rolled back"
        assert info.lease_owner is None, "the lease was released, not left to expire"
        done = tracker.done_entries()
    assert done and set(done) <= set(staged), "every done mark has its staged object"
    assert all(staged[key] == size for key, size in done.items())
    assert await _flow_run_state(params["source_dir"]) in {"CRASHED", "CANCELLED"}

    hcp_emulator.reset_counts()
    result = await bulk_upload(**params)
    assert result["outcome"] == "committed" and result["committed"] == FILES
    sent = data_requests(hcp_emulator, "PUT") - 4  # the record and the prefix's manifest, each with its times, written last
    assert sent == result["ok"] <= FILES - len(done), "only what was missing was sent"
    _check_committed(hcp_emulator, hcp_bucket, expected)


@pytest.mark.timeout(180)
async def test_a_sigterm_mid_commit_ends_promptly_and_the_rerun_finishes_the_commit_sending_nothing(
    blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    """The worst moment for a cancel: a third of the files already copied into the final prefix.
    The run ends within the grace period without rolling anything back; the next run finishes
    the commit it finds recorded, uploading nothing again."""
    expected = _source(tmp_path / "src")
    params = {"source_dir": str(tmp_path / "src"), "bucket": hcp_bucket, "prefix": "final/", **blocks.params()}
    hcp_emulator.faults.add("api", method="POST", path=r"/copy$", delay=0.2, count=None)
    code, took = signal_flow_when(
        "upload", params, tmp_path / "run.log",
        lambda: len(bucket_listing(hcp_emulator, hcp_bucket, "final/")) >= FILES // 3, signal.SIGTERM,
    )
    hcp_emulator.faults.clear()
    time.sleep(0.5)  # copies the run abandoned finish on the server side
    log = (tmp_path / "run.log").read_text()
    assert code != 0 and took < GRACE, f"exit {code} after {took:.1f} s: {log[-3000:]}"
    assert "RESULT" not in log and "rolled back" not in log, log[-3000:]

    job = f"bulk-upload:{hcp_bucket}/final/"
    final = dict(bucket_listing(hcp_emulator, hcp_bucket, "final/"))
    assert FILES // 3 <= len(final) < FILES, "stopped half-way through the commit"
    assert len(bucket_listing(hcp_emulator, hcp_bucket, STAGING_ROOT)) == FILES, "staging kept whole until the end"
    with job_tracker(blocks.tracker_path, job) as tracker:
        info = tracker.job_info()
        assert info is not None and info.state == JobState.committing, "the half-done commit is recorded"
        assert info.lease_owner is None, "the lease was released, not left to expire"
        assert info.commit_owner is None, "and the commit lock"
        assert len(tracker.done_keys()) == FILES

    hcp_emulator.reset_counts()
    result = await bulk_upload(**params)
    assert result["outcome"] == "committed" and result["ok"] == 0 and result["skipped"] == FILES
    assert data_requests(hcp_emulator, "PUT") == 4, "nothing uploaded again: only the record and the prefix's manifest (each with times)"
    _check_committed(hcp_emulator, hcp_bucket, expected)


@pytest.mark.timeout(180)
async def test_a_sigterm_mid_download_leaves_the_destination_untouched_and_the_rerun_fetches_only_the_rest(
    blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    bodies = {f"d{index % 3}/f{index:03d}.txt": f"object {index}\n".encode() * (1 + index % 30) for index in range(FILES)}
    expected = put_objects(hcp_emulator, hcp_bucket, "data/", bodies)
    dest = tmp_path / "dest"
    staging = staging_dir_for(dest.resolve())
    params = {"bucket": hcp_bucket, "dest_dir": str(dest), "prefix": "data/", **blocks.params()}
    hcp_emulator.faults.add("data", method="GET", delay=0.3, count=None)
    code, took = signal_flow_when(
        "download", params, tmp_path / "run.log", lambda: data_requests(hcp_emulator, "GET") >= FILES // 3, signal.SIGTERM
    )
    hcp_emulator.faults.clear()
    log = (tmp_path / "run.log").read_text()
    assert code != 0 and took < GRACE, f"exit {code} after {took:.1f} s: {log[-3000:]}"
    assert "RESULT" not in log

    assert not dest.exists() or list(dest.iterdir()) == [], "the destination is untouched"
    landed = landed_hashes(staging)
    assert landed and len(landed) < FILES, "the staging folder keeps what arrived"
    assert all(expected[rel] == h for rel, h in landed.items()), "a file under its final name is complete"
    with job_tracker(blocks.tracker_path, f"bulk-download:{hcp_bucket}/data/") as tracker:
        info = tracker.job_info()
        assert info is not None and info.lease_owner is None, "the lease was released, not left to expire"

    hcp_emulator.reset_counts()
    result = await bulk_download(**params)
    assert result["outcome"] == "complete" and result["moved"] == FILES
    fetched = data_requests(hcp_emulator, "GET") - 1  # the prefix's manifest, looked for once
    assert fetched == result["ok"] <= FILES - len(landed), "what landed is not fetched again"
    assert tree_hashes(dest) == expected and not staging.exists()


DEPLOYMENT = """
name: interruptions
prefect-version: 3.9.1
pull:
  - prefect.deployments.steps.set_working_directory:
      directory: "."
deployments:
  - name: cancel
    entrypoint: rahcp_prefect.flows.upload:bulk_upload
    work_pool:
      name: {pool}
    parameters: {parameters}
"""
SAVE_BLOCKS = """
import json, sys
from pydantic import SecretStr
from rahcp_prefect.blocks import HCPCredentials, HCPTracker, HCPTransferSettings
given = json.loads(sys.argv[1])
HCPCredentials(endpoint=given["endpoint"], username=given["username"], password=SecretStr(given["password"]),
               tenant=given["tenant"], retry_base_delay=0.01, max_retries=2, timeout=10.0).save("hcp", overwrite=True)
HCPTransferSettings(workers=4, progress_interval=0.05).save("settings", overwrite=True)
HCPTracker(postgres_dsn=SecretStr(given["dsn"]), lease_seconds=given["lease"]).save("tracker", overwrite=True)
"""


def _flow_run_processes(flow_run: str) -> list[int]:
    """Live (not zombie) processes that run ``flow_run`` (``PREFECT__FLOW_RUN_ID`` in their environment)."""
    found = []
    needle = f"PREFECT__FLOW_RUN_ID={flow_run}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                if " Z " not in (entry / "stat").read_text().split(")", 1)[1][:4]:
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_a_cancel_through_the_prefect_api_with_a_process_worker_keeps_staging(
    postgres_dsn: str, hcp_emulator: Any, hcp_credentials: dict[str, Any], hcp_bucket: str, tmp_path: Path
) -> None:
    """A real ``prefect server``, a real process worker: cancelling the run through the API
    (what the UI and ``prefect flow-run cancel`` do) makes the worker deliver its cancel intent
    and SIGTERM; the run ends Cancelled promptly, staging and the done marks are kept, the job
    lease is released, and the next run through the worker sends only what is missing."""
    import httpx

    from rahcp_prefect.testing.postgres import fresh_database
    from rahcp_prefect.testing.prefect_server import BIN, asyncpg_url, running_server, running_worker
    from rahcp_prefect.tracker import create_tracker

    expected = _source(tmp_path / "src")
    work = tmp_path / "work"
    work.mkdir()
    parameters = {
        "source_dir": str(tmp_path / "src"), "bucket": hcp_bucket, "prefix": "final/",
        "credentials_block": "hcp", "settings_block": "settings", "tracker_block": "tracker",
    }
    (work / "prefect.yaml").write_text(DEPLOYMENT.format(pool="cancel-pool", parameters=json.dumps(parameters)))
    root = str(Path(__file__).resolve().parents[2])
    with fresh_database(postgres_dsn) as server_dsn, running_server(asyncpg_url(server_dsn), tmp_path / "server") as env:
        env = {**env, "PYTHONPATH": root, "PREFECT_LOGGING_LEVEL": "INFO"}

        def cli(*args: str) -> None:
            done = subprocess.run(args, env=env, cwd=work, capture_output=True, text=True, timeout=240)
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

        cli(sys.executable, "-c", SAVE_BLOCKS, json.dumps({**hcp_credentials, "dsn": postgres_dsn, "lease": LEASE}))
        cli(str(BIN / "prefect"), "work-pool", "create", "cancel-pool", "--type", "process")
        cli(str(BIN / "prefect"), "--no-prompt", "deploy", "--all", "--prefect-file", str(work / "prefect.yaml"))
        api = env["PREFECT_API_URL"]
        deployment = httpx.get(f"{api}/deployments/name/bulk-upload/cancel", timeout=30).json()

        def start() -> str:
            answer = httpx.post(f"{api}/deployments/{deployment['id']}/create_flow_run", json={}, timeout=30)
            answer.raise_for_status()
            return str(answer.json()["id"])

        def state(run: str) -> str:
            return str((httpx.get(f"{api}/flow_runs/{run}", timeout=30).json()["state"] or {}).get("type", ""))

        def wait(what: str, condition: Any, timeout: float) -> float:
            started = time.monotonic()
            while not condition():
                assert time.monotonic() - started < timeout, f"timed out waiting until {what}"
                time.sleep(0.2)
            return time.monotonic() - started

        job = f"bulk-upload:{hcp_bucket}/final/"
        with running_worker(env, "cancel-pool", work, tmp_path / "worker.log"):
            hcp_emulator.faults.add("data", method="PUT", delay=0.3, count=None)
            run = start()
            wait("a third of the files were sent", lambda: data_requests(hcp_emulator, "PUT") >= FILES // 3, 180)
            answer = httpx.post(
                f"{api}/flow_runs/{run}/set_state",
                json={"state": {"type": "CANCELLING", "message": "cancelled by the test"}, "force": True}, timeout=30,
            )
            answer.raise_for_status()
            assert _flow_run_processes(run), "the run's process is found"
            gone = wait("the run's process is gone", lambda: not _flow_run_processes(run), 60)
            hcp_emulator.faults.clear()
            assert gone < GRACE, f"the run's process exited {gone:.1f} s after the cancel"
            # The worker then reports the run Cancelled (it may wait its own polling interval).
            wait("the run is cancelled", lambda: state(run) in {"CANCELLED", "CRASHED", "FAILED", "COMPLETED"}, 60)
            assert state(run) == "CANCELLED", (tmp_path / "worker.log").read_text()[-5000:]
            time.sleep(0.5)  # PUTs the run abandoned finish on the server side

            staged = dict(bucket_listing(hcp_emulator, hcp_bucket, STAGING_ROOT))
            assert bucket_listing(hcp_emulator, hcp_bucket, "final/") == []
            assert FILES // 3 - 8 <= len(staged) < FILES, "staging kept"
            tracker = create_tracker(postgres_dsn, job=job)
            try:
                info = tracker.job_info()
                assert info is not None and info.state == JobState.open, "not rolled back"
                assert info.lease_owner is None, "the lease was released"
                done = tracker.done_entries()
            finally:
                tracker.close()
            assert done and set(done) <= set(staged)
            worker_log = (tmp_path / "worker.log").read_text(errors="replace")
            assert "rolled back" not in worker_log

            hcp_emulator.reset_counts()
            rerun = start()
            wait("the rerun completed", lambda: state(rerun) in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}, 180)
            assert state(rerun) == "COMPLETED", (tmp_path / "worker.log").read_text()[-5000:]
        sent = data_requests(hcp_emulator, "PUT") - 4  # and the record and the prefix's manifest, each with times
        assert sent <= FILES - len(done), "only what was missing was sent"
        assert without_manifest(bucket_hashes(hcp_emulator, hcp_bucket, "final/")) == {
            f"final/{rel}": digest for rel, digest in expected.items()
        }
