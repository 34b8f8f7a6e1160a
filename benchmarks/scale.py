"""The ``bulk-upload`` flow end to end at scale: memory and CPU per file as the job grows.

    python -m benchmarks.scale --files 10000,100000,300000 [--tracker sqlite|postgres] [--size 8]

For each N: a source tree of N files of ``--size`` bytes (made once under ``--data-dir`` and
reused), a fresh emulator in its own process with the metadata-only store (``--store metadata``:
objects without bytes, so a million fit), a fresh tracker (SQLite file, or a PostgreSQL schema
of ``RAHCP_TEST_POSTGRES_DSN``) and one ``bulk-upload`` flow run in a fresh child process against
one Prefect server (its own process too): scan, sync, transfer, staging check, commit, final
check, manifest. The store, the API and Prefect's server run in other processes, so
``peak_rss_mb`` (the child's ``ru_maxrss``) and ``cpu_us_per_file`` (its user+system CPU from the
flow's start to its end, over N) are the flow's own. MB here is 10^6 bytes.

Prints one JSON line per N: ``files``, ``committed``, ``peak_rss_mb``, ``cpu_us_per_file``,
``seconds`` (the flow's wall time), ``phases`` (seconds per phase: the run's own phases, and
inside the commit the move, final check and manifest timed by wrappers) and ``phase_peak_rss_mb``
(the largest RSS sampled every 20 ms while each phase ran). Then one line with the RSS growth
per file between the smallest and the largest N, and the bars of issue 28: peak RSS at most
300 MB at every N, growth at most 0.05 KB per file, CPU per file within 15 % of their mean.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any

USER = "bench"
PASSWORD = "bench-password"
PER_DIR = 1000
RSS_BAR_MB = 300.0
GROWTH_BAR_KB = 0.05
CPU_SPREAD = 0.15


# -- the source tree -------------------------------------------------------------------------


def source_tree(data: Path, files: int, size: int) -> Path:
    """``data/tree-<files>-<size>``: ``files`` files of ``size`` bytes, ``PER_DIR`` a folder
    (made once; a ``.complete`` marker beside it says it is whole)."""
    root = data / f"tree-{files}-{size}"
    marker = data / f"tree-{files}-{size}.complete"
    if marker.exists():
        return root
    payload = b"x" * size
    for index in range(files):
        folder = root / f"d{index // PER_DIR:04d}"
        if index % PER_DIR == 0:
            folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / f"f{index:07d}.bin", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            if payload:
                os.write(fd, payload)
        finally:
            os.close(fd)
    marker.touch()
    return root


# -- the emulator and Prefect ----------------------------------------------------------------


@contextmanager
def metadata_emulator() -> Any:
    """The emulator with the metadata-only store in its own process; yields its API URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "rahcp_prefect.testing", "--port", "0", "--store", "metadata"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert proc.stdout is not None
        yield json.loads(proc.stdout.readline())["api"], proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def create_bucket(api: str, name: str) -> None:
    import httpx

    token = httpx.post(f"{api}/auth/token", data={"username": USER, "password": PASSWORD}).json()["access_token"]
    resp = httpx.post(f"{api}/buckets", json={"bucket": name}, headers={"Authorization": f"Bearer {token}"})
    resp.raise_for_status()


def rss_mb_of(pid: int) -> float:
    """The resident set of process ``pid`` now, in MB (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except OSError:
        return 0.0


# -- the child: one flow run, instrumented ---------------------------------------------------


class PhaseMeter:
    """Seconds and the largest sampled RSS of each phase (phases may nest)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.peak: dict[str, float] = {}
        self._open: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        pid = os.getpid()
        while not self._stop.wait(0.02):
            rss = rss_mb_of(pid)
            for name in list(self._open):
                self.peak[name] = max(self.peak.get(name, 0.0), rss)

    @contextmanager
    def phase(self, name: str) -> Any:
        self._open.add(name)
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
            self._open.discard(name)

    def wrap(self, module: Any, attr: str, name: str) -> None:
        """Time ``module.attr`` (an async function) as phase ``name``, when it exists."""
        inner = getattr(module, attr, None)
        if inner is None:
            return

        async def timed(*args: Any, **kwargs: Any) -> Any:
            with self.phase(name):
                return await inner(*args, **kwargs)

        setattr(module, attr, timed)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1)


def instrument(meter: PhaseMeter) -> None:
    """Time the run's phases (``RunView.phase``) and, inside the commit, its parts."""
    from rahcp_prefect.flows.artifacts import RunView
    from rahcp_prefect.flows import upload as upload_flow
    from rahcp_prefect.job import commit, upload

    original = RunView.phase

    @contextmanager
    def phase(self: Any, name: str, files: int = 0, size: int = 0) -> Any:
        with meter.phase(name), original(self, name, files, size) as entry:
            yield entry

    RunView.phase = phase  # type: ignore[assignment, method-assign]
    meter.wrap(upload, "verify_staging", "staging_check")
    meter.wrap(commit, "check_final", "final_check")
    meter.wrap(commit, "record_commit", "record")  # the fixity record, root manifest and times, read back
    meter.wrap(upload_flow, "commit_staging", "move")


async def _run_flow(spec: dict[str, Any]) -> dict[str, Any]:
    from pydantic import SecretStr

    from rahcp_prefect.blocks import HCPCredentials, HCPTracker, HCPTransferSettings
    from rahcp_prefect.flows import bulk_upload

    tag = spec["tag"]
    await HCPCredentials(endpoint=spec["api"], username=USER, password=SecretStr(PASSWORD)).save(f"scale-{tag}")
    await HCPTransferSettings(workers=spec["workers"]).save(f"scale-settings-{tag}")
    tracker = HCPTracker(postgres_dsn=SecretStr(spec["dsn"])) if spec.get("dsn") else HCPTracker(sqlite_path=spec["db"])
    await tracker.save(f"scale-tracker-{tag}")
    meter = PhaseMeter()
    instrument(meter)
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    state = await bulk_upload(
        source_dir=spec["source"], bucket=spec["bucket"], prefix="archive/", job=f"scale-{tag}",
        credentials_block=f"scale-{tag}", settings_block=f"scale-settings-{tag}",
        tracker_block=f"scale-tracker-{tag}", batch_size=spec["batch_size"], return_state=True,
    )
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    meter.close()
    if not state.is_completed():
        raise RuntimeError(f"flow run failed: {state}")
    result = await state.result()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "committed": result.get("committed"),
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "peak_rss_mb": round(after.ru_maxrss * 1024 / 1e6, 1),  # KiB -> MB, as the sampler
        "phases": {name: round(value, 2) for name, value in meter.seconds.items()},
        "phase_peak_rss_mb": {name: round(value, 1) for name, value in meter.peak.items()},
        "run_phases": {name: phase.get("seconds") for name, phase in (result.get("phases") or {}).items()},
    }


def child(spec_json: str) -> None:
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    out = asyncio.run(_run_flow(json.loads(spec_json)))
    sys.stdout.write("RESULT " + json.dumps(out) + "\n")


# -- the parent ------------------------------------------------------------------------------


def _postgres_schema_dsn(base: str, schema: str) -> str:
    """A DSN whose connections use ``schema`` (created here), so each N starts empty."""
    import psycopg

    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


def _drop_schema(base: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def one(files: int, args: argparse.Namespace, env: dict[str, str], work: Path) -> dict[str, Any]:
    source = source_tree(Path(args.data_dir), files, args.size)
    tag = uuid.uuid4().hex[:8]
    spec: dict[str, Any] = {
        "tag": tag, "source": str(source), "bucket": f"scale-{tag}", "workers": args.workers,
        "batch_size": args.batch_size, "db": str(work / f"tracker-{tag}.db"),
    }
    if args.tracker == "postgres":
        base = os.environ.get("RAHCP_TEST_POSTGRES_DSN")
        if not base:
            raise SystemExit("--tracker postgres needs RAHCP_TEST_POSTGRES_DSN")
        spec["dsn"] = _postgres_schema_dsn(base, f"scale_{tag}")
    try:
        with metadata_emulator() as (api, emulator_pid):
            spec["api"] = api
            create_bucket(api, spec["bucket"])
            done = subprocess.run(
                [sys.executable, "-m", "benchmarks.scale", "--child", json.dumps(spec)],
                env=env, capture_output=True, text=True,
            )
            emulator_rss = rss_mb_of(emulator_pid)
    finally:
        if "dsn" in spec:
            _drop_schema(os.environ["RAHCP_TEST_POSTGRES_DSN"], f"scale_{tag}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"the flow run for {files} files failed: {done.stderr[-3000:]}")
    out = json.loads(lines[-1][len("RESULT ") :])
    cpu = out.pop("cpu_seconds")
    return {
        "scenario": f"scale-{args.tracker}", "files": files, "committed": out.pop("committed"),
        "peak_rss_mb": out.pop("peak_rss_mb"), "cpu_us_per_file": round(cpu * 1e6 / files, 1),
        "cpu_seconds": cpu, **out, "emulator_rss_mb": round(emulator_rss, 1), "tracker": args.tracker,
    }


def verdict(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Growth per file between the smallest and the largest N, and the issue's bars."""
    low, high = rows[0], rows[-1]
    span = high["files"] - low["files"]
    growth_kb = (high["peak_rss_mb"] - low["peak_rss_mb"]) * 1000 / span if span else 0.0
    cpu = [row["cpu_us_per_file"] for row in rows]
    mean = sum(cpu) / len(cpu)
    spread = max(abs(value - mean) / mean for value in cpu) if mean else 0.0
    return {
        "scenario": "scale-growth",
        "from_files": low["files"], "to_files": high["files"],
        "rss_growth_kb_per_file": round(growth_kb, 4),
        "cpu_us_per_file_spread": round(spread, 3),
        "bars": {
            "every_n_committed": all(row["committed"] == row["files"] for row in rows),
            f"peak_rss<={RSS_BAR_MB:.0f}MB": all(row["peak_rss_mb"] <= RSS_BAR_MB for row in rows),
            f"growth<={GROWTH_BAR_KB}KB/file": growth_kb <= GROWTH_BAR_KB,
            f"cpu_per_file_within_{CPU_SPREAD:.0%}": spread <= CPU_SPREAD,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__.splitlines()[0])
    parser.add_argument("--files", default="10000,100000,300000", help="comma-separated file counts")
    parser.add_argument("--size", type=int, default=8, help="bytes per file")
    parser.add_argument("--tracker", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--data-dir", default=os.path.join(tempfile.gettempdir(), "rahcp-bench-scale"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    counts = sorted(int(value) for value in args.files.split(","))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from rahcp_prefect.testing.prefect_server import running_server

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="rahcp-scale-") as tmp:
        work = Path(tmp)
        with running_server(f"sqlite+aiosqlite:///{work / 'prefect.db'}", work / "prefect") as env:
            env = {**env, "PREFECT_LOGGING_LEVEL": "WARNING"}
            for files in counts:
                row = one(files, args, env, work)
                rows.append(row)
                print(json.dumps(row), flush=True)
    print(json.dumps(verdict(rows)), flush=True)


if __name__ == "__main__":
    main()
