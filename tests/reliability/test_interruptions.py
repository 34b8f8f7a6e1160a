"""Interruption is not failure: a SIGTERM (what a worker sends on cancel, Kubernetes on
eviction) or SIGINT to a flow run's process keeps staging and the done marks, releases the job
lease and the commit lock, and ends the run promptly as Crashed/Cancelled, never rolled back; the
next run sends only what is missing. The flow process hears the signal through its event loop
(``rahcp_prefect.interrupts``), so it is honoured wherever it lands: mid-upload, mid-download,
mid-commit, while a download waits to move its files, while a run waits for the job lease, and
inside a garbage collector's weakref callback (where an exception raised by a signal handler is
dropped).

Each interrupted run is a child process (``python -c``) on the session's Prefect API; the rerun
runs in-process. Every signal lands at a known point: an emulator ``hold`` fault stops the run at
one request (the 21st file, the 21st copy) until the test released it, or the run is waiting for
a lock another run holds (its log says so); the test signals it only once it is there.

Each test's docstring holds the loop that runs it 20 times in a row with one core kept busy
(``RAHCP_REPEAT=n`` runs every test of this module n times; the suite runs each once).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from rahcp_prefect.flows import bulk_download, bulk_upload
from rahcp_prefect.job import STAGING_ROOT, staging_dir_for
from rahcp_prefect.testing.faults import FaultRule
from rahcp_prefect.testing.prefect_fixtures import SavedBlocks
from rahcp_prefect.tracker import JobState

from .helpers import (
    FLOW_SCRIPT,
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
HELD_AT = FILES // 3  # the hold lets this many requests through: the next one waits
LEASE = 120.0  # long: a lease seen free right after the run ended was released, not expired
GRACE = 10.0  # the run must be gone well inside the 30 s a worker or Kubernetes allows
FILE_PATH = r"/d\d/f\d{3}\.txt"  # the source files' requests (not a manifest's)
TIMEOUT = pytest.mark.timeout(420)  # the first test of a session also waits for its fixtures (a loaded machine)
SIGNALS = pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``RAHCP_REPEAT=n``: every test of this module n times in a row (the 20-run loops)."""
    if (rounds := int(os.environ.get("RAHCP_REPEAT", "1"))) > 1:
        metafunc.fixturenames.append("round_")
        metafunc.parametrize("round_", range(rounds))


@pytest.fixture
async def blocks(saved_blocks: SavedBlocks) -> SavedBlocks:
    return await with_lease(saved_blocks, LEASE)


def _source(root: Path, files: int = FILES) -> dict[str, str]:
    for index in range(files):
        path = root / f"d{index % 3}" / f"f{index:03d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"file {index}\n".encode() * (1 + index % 40))
    return tree_hashes(root)


def _objects(emulator: Any, bucket: str) -> dict[str, str]:
    bodies = {f"d{index % 3}/f{index:03d}.txt": f"object {index}\n".encode() * (1 + index % 30) for index in range(FILES)}
    return put_objects(emulator, bucket, "data/", bodies)


async def _flow_run_state(key: str, value: str) -> str:
    """The state type of the (one) flow run whose parameter ``key`` is ``value``, from the Prefect API
    (among the 200 that started last: a 20-round loop makes more than that in one session)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.sorting import FlowRunSort

    async with get_client() as client:
        runs = await client.read_flow_runs(limit=200, sort=FlowRunSort.START_TIME_DESC)
    mine = [run for run in runs if (run.parameters or {}).get(key) == value]
    assert len(mine) == 1, [run.name for run in runs]
    assert mine[0].state is not None
    return mine[0].state.type.value


def _interrupted(log_file: Path, code: int, took: float, sig: int) -> str:
    """The run's output, once it is checked: it exited non-zero within the grace period as an
    interruption named after the signal (heard through the event loop), with no result and no
    rollback."""
    log = log_file.read_text()
    assert code != 0 and took < GRACE, f"exit {code} after {took:.1f} s: {log[-3000:]}"
    assert f"interrupted ({signal.Signals(sig).name})" in log, log[-3000:]
    assert "RESULT" not in log and "rolled back" not in log, log[-3000:]
    return log


def _settled(listing: Any, count: int) -> list[tuple[str, int]]:
    """``listing()`` once it holds ``count`` entries (a request let through just before the hold
    may still be finishing on the server side when the run is gone), else as it is after 10 s."""
    deadline = time.monotonic() + 10
    while len(found := listing()) != count and time.monotonic() < deadline:
        time.sleep(0.05)
    return list(found)


def _held(emulator: Any, plane: str, method: str, path: str) -> FaultRule:
    """A rule that lets ``HELD_AT`` matching requests through and holds the next ones."""
    return emulator.faults.add(plane, method=method, path=path, hold=True, after=HELD_AT, count=None)


def _check_committed(emulator: Any, bucket: str, expected: dict[str, str]) -> None:
    """The final prefix holds the source byte for byte (beside the job's tag files); staging is empty."""
    assert without_manifest(bucket_hashes(emulator, bucket, "final/")) == {
        f"final/{rel}": digest for rel, digest in expected.items()
    }
    assert bucket_listing(emulator, bucket, STAGING_ROOT) == []


@TIMEOUT
@SIGNALS
async def test_a_signal_mid_upload_keeps_staging_and_the_rerun_sends_only_what_is_missing(
    blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path, sig: int
) -> None:
    """Loop: ``python3 -c 'while True: pass' & BUSY=$!; RAHCP_REPEAT=20 .venv/bin/python -m pytest -q
    tests/reliability/test_interruptions.py -k mid_upload; kill $BUSY``"""
    expected = _source(tmp_path / "src")
    params = {"source_dir": str(tmp_path / "src"), "bucket": hcp_bucket, "prefix": "final/", **blocks.params()}
    rule = _held(hcp_emulator, "data", "PUT", FILE_PATH)
    code, took = signal_flow_when("upload", params, tmp_path / "run.log", lambda: rule.held > 0, sig)
    hcp_emulator.faults.clear()  # the held PUTs are dropped: they never land
    _interrupted(tmp_path / "run.log", code, took, sig)

    job = f"bulk-upload:{hcp_bucket}/final/"
    staged = dict(_settled(lambda: bucket_listing(hcp_emulator, hcp_bucket, STAGING_ROOT), HELD_AT))
    assert bucket_listing(hcp_emulator, hcp_bucket, "final/") == [], "nothing visible before the commit"
    assert len(staged) == HELD_AT, "staging kept: every file sent before the hold"
    with job_tracker(blocks.tracker_path, job) as tracker:
        info = tracker.job_info()
        assert info is not None and info.state == JobState.open, "not rolled back"
        assert info.lease_owner is None, "the lease was released, not left to expire"
        done = tracker.done_entries()
    assert done and set(done) <= set(staged), "every done mark has its staged object"
    assert all(staged[key] == size for key, size in done.items())
    assert await _flow_run_state("source_dir", params["source_dir"]) in {"CRASHED", "CANCELLED"}

    hcp_emulator.reset_counts()
    result = await bulk_upload(**params)
    assert result["outcome"] == "committed" and result["committed"] == FILES
    sent = data_requests(hcp_emulator, "PUT") - 4  # the record and the prefix's manifest, each with its times, written last
    assert sent == result["ok"] <= FILES - len(done), "only what was missing was sent"
    _check_committed(hcp_emulator, hcp_bucket, expected)


@TIMEOUT
@SIGNALS
async def test_a_signal_mid_commit_ends_promptly_and_the_rerun_finishes_the_commit_sending_nothing(
    blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path, sig: int
) -> None:
    """The worst moment for a cancel: a third of the files already copied into the final prefix.
    The run ends within the grace period without rolling anything back, releasing the commit
    lock; the next run finishes the commit it finds recorded, uploading nothing again.

    Loop: ``python3 -c 'while True: pass' & BUSY=$!; RAHCP_REPEAT=20 .venv/bin/python -m pytest -q
    tests/reliability/test_interruptions.py -k mid_commit; kill $BUSY``"""
    expected = _source(tmp_path / "src")
    params = {"source_dir": str(tmp_path / "src"), "bucket": hcp_bucket, "prefix": "final/", **blocks.params()}
    rule = _held(hcp_emulator, "api", "POST", r"/copy$")
    code, took = signal_flow_when("upload", params, tmp_path / "run.log", lambda: rule.held > 0, sig)
    hcp_emulator.faults.clear()  # the held copies are dropped: they never land
    _interrupted(tmp_path / "run.log", code, took, sig)

    job = f"bulk-upload:{hcp_bucket}/final/"
    final = dict(_settled(lambda: bucket_listing(hcp_emulator, hcp_bucket, "final/"), HELD_AT))
    assert len(final) == HELD_AT, "stopped at the held copy: the ones before it are in place"
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


@TIMEOUT
@SIGNALS
async def test_a_signal_mid_download_leaves_the_destination_untouched_and_the_rerun_fetches_only_the_rest(
    blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path, sig: int
) -> None:
    """Loop: ``python3 -c 'while True: pass' & BUSY=$!; RAHCP_REPEAT=20 .venv/bin/python -m pytest -q
    tests/reliability/test_interruptions.py -k mid_download; kill $BUSY``"""
    expected = _objects(hcp_emulator, hcp_bucket)
    dest = tmp_path / "dest"
    staging = staging_dir_for(dest.resolve())
    params = {"bucket": hcp_bucket, "dest_dir": str(dest), "prefix": "data/", **blocks.params()}
    rule = _held(hcp_emulator, "data", "GET", FILE_PATH)
    code, took = signal_flow_when("download", params, tmp_path / "run.log", lambda: rule.held > 0, sig)
    hcp_emulator.faults.clear()
    _interrupted(tmp_path / "run.log", code, took, sig)

    assert not dest.exists() or list(dest.iterdir()) == [], "the destination is untouched"
    landed = landed_hashes(staging)
    assert 0 < len(landed) <= HELD_AT, "the staging folder keeps what arrived"
    assert all(expected[rel] == h for rel, h in landed.items()), "a file under its final name is complete"
    with job_tracker(blocks.tracker_path, f"bulk-download:{hcp_bucket}/data/") as tracker:
        info = tracker.job_info()
        assert info is not None and info.lease_owner is None, "the lease was released, not left to expire"
    assert await _flow_run_state("dest_dir", params["dest_dir"]) in {"CRASHED", "CANCELLED"}

    hcp_emulator.reset_counts()
    result = await bulk_download(**params)
    assert result["outcome"] == "complete" and result["moved"] == FILES
    fetched = data_requests(hcp_emulator, "GET") - 1  # the prefix's manifest, looked for once
    assert fetched == result["ok"] <= FILES - len(landed), "what landed is not fetched again"
    assert tree_hashes(dest) == expected and not staging.exists()


@TIMEOUT
@SIGNALS
async def test_a_signal_while_a_download_waits_to_move_its_files_keeps_them_and_the_rerun_moves_them(
    blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path, sig: int
) -> None:
    """A download's commit: every file arrived, and the run waits for the commit lock another
    run holds (its log says so) when the signal lands. The destination stays untouched, the
    staging folder whole, the commit lock the other run's; the rerun moves the files into
    place fetching nothing. (A signal during the move itself stops it between two files:
    ``tests/job/test_interruption.py``.)

    Loop: ``python3 -c 'while True: pass' & BUSY=$!; RAHCP_REPEAT=20 .venv/bin/python -m pytest -q
    tests/reliability/test_interruptions.py -k waits_to_move; kill $BUSY``"""
    expected = _objects(hcp_emulator, hcp_bucket)
    dest = tmp_path / "dest"
    staging = staging_dir_for(dest.resolve())
    params = {"bucket": hcp_bucket, "dest_dir": str(dest), "prefix": "data/", **blocks.params()}
    job = f"bulk-download:{hcp_bucket}/data/"
    with job_tracker(blocks.tracker_path, job) as tracker:
        assert tracker.acquire_commit("other-run", LEASE)
    log = tmp_path / "run.log"
    code, took = signal_flow_when(
        "download", params, log, lambda: "waiting for the commit lock held by run other-run" in log.read_text(), sig
    )
    _interrupted(log, code, took, sig)

    assert not dest.exists() or list(dest.iterdir()) == [], "the destination is untouched"
    assert landed_hashes(staging) == expected, "every file waits in the staging folder"
    with job_tracker(blocks.tracker_path, job) as tracker:
        info = tracker.job_info()
        assert info is not None and info.lease_owner is None, "the lease was released, not left to expire"
        assert info.commit_owner == "other-run", "the other run's commit lock is left alone"
        assert info.state == JobState.open
        tracker.release_commit("other-run")

    hcp_emulator.reset_counts()
    result = await bulk_download(**params)
    assert result["outcome"] == "complete" and result["moved"] == FILES and result["ok"] == 0
    assert data_requests(hcp_emulator, "GET") == 1, "nothing fetched again (the manifest looked for once)"
    assert tree_hashes(dest) == expected and not staging.exists()


@TIMEOUT
@SIGNALS
async def test_a_signal_while_a_run_waits_for_the_job_lease_ends_it_untouched(
    blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path, sig: int
) -> None:
    """``on_busy="wait"``: the run waits for the run holding the job (its log says so) when
    the signal lands; it ends at once, sends nothing, and leaves the holder's lease alone.

    Loop: ``python3 -c 'while True: pass' & BUSY=$!; RAHCP_REPEAT=20 .venv/bin/python -m pytest -q
    tests/reliability/test_interruptions.py -k job_lease; kill $BUSY``"""
    from rahcp_prefect.tracker.protocol import LeaseMode

    _source(tmp_path / "src")
    params = {"source_dir": str(tmp_path / "src"), "bucket": hcp_bucket, "prefix": "final/", **blocks.params()}
    job = f"bulk-upload:{hcp_bucket}/final/"
    with job_tracker(blocks.tracker_path, job) as tracker:
        assert tracker.take_job_lease("other-run", LEASE, LeaseMode.single).held
    log = tmp_path / "run.log"
    hcp_emulator.reset_counts()
    code, took = signal_flow_when(
        "upload", params, log, lambda: "waiting for it (on_busy='wait')" in log.read_text(), sig
    )
    text = log.read_text()
    assert code != 0 and took < GRACE, f"exit {code} after {took:.1f} s: {text[-3000:]}"
    assert "RESULT" not in text
    assert data_requests(hcp_emulator) == 0, "nothing sent"
    assert bucket_listing(hcp_emulator, hcp_bucket) == []
    with job_tracker(blocks.tracker_path, job) as tracker:
        info = tracker.job_info()
        assert info is not None and info.lease_owner == "other-run", "the holder's lease is left alone"
    assert await _flow_run_state("source_dir", params["source_dir"]) in {"CRASHED", "CANCELLED"}


GC_SCRIPT = FLOW_SCRIPT.replace(
    "print(", """import gc, os, signal, weakref, pathlib
trigger = pathlib.Path(sys.argv[3])

def in_a_gc_callback(_ref):
    signal.raise_signal(signal.SIGTERM)  # delivered to this thread: the handler runs in this callback's frame
    for _ in range(10000):
        pass

class Cycle:
    pass

async def collect_when_triggered():
    while not trigger.exists():
        await asyncio.sleep(0.01)
    garbage = Cycle()
    garbage.me = garbage
    ref = weakref.ref(garbage, in_a_gc_callback)
    del garbage
    gc.collect()  # the weakref callback runs here, inside the collection
    print("COLLECTED", ref() is None, flush=True)

async def main():
    collector = asyncio.create_task(collect_when_triggered())
    try:
        return await flow(**json.loads(sys.argv[2]))
    finally:
        collector.cancel()

print(""", 1,
).replace("asyncio.run(flow(**json.loads(sys.argv[2])))", "asyncio.run(main())")


@TIMEOUT
async def test_a_sigterm_delivered_in_a_gc_weakref_callback_still_ends_the_run_within_the_grace_period(
    blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    """The lost signal of issue 29: the SIGTERM lands while the garbage collector runs a weakref
    callback, where an exception raised by a signal handler is printed and dropped ("Exception
    ignored in ..."), so a run whose SIGTERM raised ``TerminationSignal`` went on and completed.
    Here the run, held mid-upload, collects a cycle whose weakref callback sends the SIGTERM; the
    run still ends as an interruption within the grace period.

    Loop: ``python3 -c 'while True: pass' & BUSY=$!; RAHCP_REPEAT=20 .venv/bin/python -m pytest -q
    tests/reliability/test_interruptions.py -k gc_weakref; kill $BUSY``"""
    _source(tmp_path / "src")
    params = {"source_dir": str(tmp_path / "src"), "bucket": hcp_bucket, "prefix": "final/", **blocks.params()}
    rule = _held(hcp_emulator, "data", "PUT", FILE_PATH)
    trigger = tmp_path / "collect-now"
    code, took = signal_flow_when(
        "upload", params, tmp_path / "run.log", lambda: rule.held > 0, signal.SIGTERM,
        script=GC_SCRIPT, args=(str(trigger),), send=trigger.touch,
    )
    hcp_emulator.faults.clear()
    log = _interrupted(tmp_path / "run.log", code, took, signal.SIGTERM)
    assert "COLLECTED True" in log, "the signal was sent from the weakref callback of a collection"
    assert "Exception ignored" not in log, log[-3000:]
    assert bucket_listing(hcp_emulator, hcp_bucket, "final/") == []
    assert len(_settled(lambda: bucket_listing(hcp_emulator, hcp_bucket, STAGING_ROOT), HELD_AT)) == HELD_AT
    with job_tracker(blocks.tracker_path, f"bulk-upload:{hcp_bucket}/final/") as tracker:
        info = tracker.job_info()
        assert info is not None and info.state == JobState.open and info.lease_owner is None


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
@pytest.mark.timeout(900)  # a real server, a worker and two runs: minutes on a loaded machine
def test_a_cancel_through_the_prefect_api_with_a_process_worker_keeps_staging(
    postgres_dsn: str, hcp_emulator: Any, hcp_credentials: dict[str, Any], hcp_bucket: str, tmp_path: Path
) -> None:
    """A real ``prefect server``, a real process worker: cancelling the run through the API
    (what the UI and ``prefect flow-run cancel`` do) makes the worker deliver its cancel intent
    and SIGTERM; the run ends Cancelled promptly, staging and the done marks are kept, the job
    lease is released, and the next run through the worker sends only what is missing.

    Loop: ``python3 -c 'while True: pass' & BUSY=$!; RAHCP_REPEAT=20 .venv/bin/python -m pytest -q
    tests/reliability/test_interruptions.py -k cancel_through; kill $BUSY``"""
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
            rule = _held(hcp_emulator, "data", "PUT", FILE_PATH)
            run = start()
            wait("a third of the files were sent and the next is held", lambda: rule.held > 0, 180)
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
            staged = dict(_settled(lambda: bucket_listing(hcp_emulator, hcp_bucket, STAGING_ROOT), HELD_AT))
            assert bucket_listing(hcp_emulator, hcp_bucket, "final/") == []
            assert len(staged) == HELD_AT, "staging kept"
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
