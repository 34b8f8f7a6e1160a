"""HCP as code store and pipeline trigger, end to end on one real ``prefect server`` (PostgreSQL)
shared by the module, with one real process worker.

1. ``prefect deploy`` of a project whose ``push`` step is ``push_to_hcp`` puts its code in the
   bucket (minus ``.git``/``.venv``...); the project folder is then deleted and the worker runs
   the deployment from code its ``pull_from_hcp`` step fetched.
2. The README's automation (``rahcp.upload.committed`` under one prefix runs that deployment),
   run as written: a rolled-back upload starts nothing, the committed one exactly one run, whose
   parameters come from the event; the event, read back from the API, carries the counts.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventResourceFilter
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.utilities.asyncutils import run_coro_as_sync

from rahcp_prefect.job.manifest import MTIMES_NAME
from rahcp_prefect import events
from rahcp_prefect.blocks import HCPTracker
from rahcp_prefect.testing.fixtures import TEST_PASSWORD, _delete_bucket
from rahcp_prefect.testing.postgres import fresh_database
from rahcp_prefect.testing.prefect_fixtures import emulator_credentials, make_tree
from rahcp_prefect.testing.prefect_server import BIN, asyncpg_url, run_deployment, running_server, running_worker

T = TypeVar("T")
POOL = "rahcp-pull"
CODE_FOLDER = "code/pipeline"
DEPLOYMENT = "pipeline-downstream/downstream"

FLOW_SOURCE = '''
from pathlib import Path

from prefect import flow
from prefect.runtime import flow_run

PULLED_TOKEN = "{token}"


@flow(name="pipeline-downstream")
def downstream(marker_dir: str, prefix: str = "") -> str:
    marker = Path(marker_dir) / f"{{flow_run.get_id()}}.json"
    marker.write_text(__import__("json").dumps(
        {{"token": PULLED_TOKEN, "prefix": prefix, "file": str(Path(__file__).resolve())}}
    ))
    return PULLED_TOKEN
'''

PREFECT_YAML = """
name: pipeline-e2e
prefect-version: 3.9.0
push:
  - rahcp_prefect.deployments.steps.push_to_hcp:
      bucket: {bucket}
      folder: {folder}
      credentials: "{{{{ prefect.blocks.hcp-credentials.{credentials} }}}}"
pull:
  - rahcp_prefect.deployments.steps.pull_from_hcp:
      bucket: {bucket}
      folder: {folder}
      credentials: "{{{{ prefect.blocks.hcp-credentials.{credentials} }}}}"
deployments:
  - name: downstream
    entrypoint: pipeline_flow.py:downstream
    parameters:
      marker_dir: {markers}
    work_pool:
      name: {pool}
"""


@dataclass
class Pipeline:
    env: dict[str, str]
    api_url: str
    bucket: str
    token: str
    project: Path
    markers: Path
    worker_log: Path
    deploy_output: str
    credentials: str
    tracker: str


def _run(env: dict[str, str], cwd: Path, *command: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(command), env=env, cwd=cwd, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, f"{command}: {done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done


async def _with_client(api_url: str, call: Callable[[PrefectClient], Awaitable[T]]) -> T:
    async with PrefectClient(api=api_url) as client:
        return await call(client)


async def _eventually(check: Callable[[], Awaitable[T | None]], what: str, timeout: float = 240.0) -> T:
    """Poll ``check`` until it returns something (wide margin: the machine is shared)."""
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(1.0)


@pytest.fixture(scope="module")
def pipeline(
    postgres_dsn: str, hcp_emulator_session: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    """One real server, the code bucket, the blocks, the deployment pushed to HCP, a worker."""
    root = tmp_path_factory.mktemp("pipeline")
    bucket = f"code-{uuid.uuid4().hex[:12]}"
    hcp_emulator_session.create_bucket(bucket)
    creds = {
        "endpoint": hcp_emulator_session.base_url, "username": "tester",
        "password": TEST_PASSWORD, "tenant": "dev-ai",
    }
    with fresh_database(postgres_dsn) as dsn, running_server(asyncpg_url(dsn), root / "server") as env:
        api_url = env["PREFECT_API_URL"]

        async def save_blocks(client: PrefectClient) -> None:
            await emulator_credentials(creds).asave("hcp-pipeline", client=client)
            await HCPTracker(sqlite_path=str(root / "tracker.db")).asave("tracker-pipeline", client=client)

        run_coro_as_sync(_with_client(api_url, save_blocks))
        token = uuid.uuid4().hex
        project, markers, elsewhere = root / "project", root / "markers", root / "worker-home"
        for folder in (project / ".git", project / ".venv" / "lib", markers, elsewhere):
            folder.mkdir(parents=True)
        (project / "pipeline_flow.py").write_text(FLOW_SOURCE.format(token=token))
        (project / "notes #1 (100%).md").write_text("odd name, pushed too")
        (project / ".git" / "HEAD").write_text("ref: refs/heads/main")
        (project / ".venv" / "lib" / "site.py").write_text("# not code of the project")
        (project / "prefect.yaml").write_text(PREFECT_YAML.format(
            bucket=bucket, folder=CODE_FOLDER, credentials="hcp-pipeline", markers=markers, pool=POOL
        ))
        _run(env, root, str(BIN / "prefect"), "work-pool", "create", POOL, "--type", "process")
        deployed = _run(env, project, str(BIN / "prefect"), "--no-prompt", "deploy", "--all")
        shutil.rmtree(project)  # from now on the code exists only in the bucket
        worker_log = root / "worker.log"
        with running_worker(env, POOL, elsewhere, worker_log):
            yield Pipeline(
                env, api_url, bucket, token, project, markers, worker_log,
                deployed.stdout + deployed.stderr, "hcp-pipeline", "tracker-pipeline",
            )
    _delete_bucket(hcp_emulator_session, bucket)


def test_a_deployment_pulled_from_hcp_runs_on_a_real_worker(pipeline: Pipeline, hcp_emulator: Any) -> None:
    listed = hcp_emulator.s3.list_objects_v2(Bucket=pipeline.bucket, Prefix=f"{CODE_FOLDER}/").get("Contents", [])
    assert {item["Key"].removeprefix(f"{CODE_FOLDER}/") for item in listed} == {
        "pipeline_flow.py", "prefect.yaml", "notes #1 (100%).md", MTIMES_NAME
    }, "push_to_hcp leaves out .git/ and .venv (Prefect's default .prefectignore); the folder's times beside"

    run = run_deployment(pipeline.env, pipeline.markers, DEPLOYMENT)

    output = run.stdout + run.stderr
    assert run.returncode == 0 and "Completed" in output, output[-3000:] + pipeline.worker_log.read_text()[-5000:]
    markers = [json.loads(path.read_text()) for path in pipeline.markers.glob("*.json")]
    markers = [marker for marker in markers if marker["prefix"] == ""]  # not the automation's
    assert len(markers) == 1 and markers[0]["token"] == pipeline.token
    assert not markers[0]["file"].startswith(str(pipeline.project)), "ran the pushed copy, not the project"
    logs = pipeline.worker_log.read_text(errors="replace") + pipeline.deploy_output
    assert TEST_PASSWORD not in logs


def _upload(pipeline: Pipeline, source: Path, bucket: str, job: str) -> str:
    """``bulk_upload`` in a process of its own against the real server: its final state type."""
    arguments = {
        "source_dir": str(source), "bucket": bucket, "prefix": "scans/", "job": job,
        "credentials_block": pipeline.credentials, "tracker_block": pipeline.tracker,
    }
    script = (
        "import asyncio, json, sys\n"
        "from rahcp_prefect.flows import bulk_upload\n"
        "state = asyncio.run(bulk_upload(**json.loads(sys.argv[1]), return_state=True))\n"
        "print('STATE', state.type.value)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(arguments)],
        env=pipeline.env, capture_output=True, text=True, timeout=400,
    )
    states = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("STATE ")]
    assert states, done.stdout[-3000:] + done.stderr[-3000:]
    return states[0]


def _readme_automation() -> Callable[[str], Awaitable[None]]:
    """The README's automation example, run as written (found by what it reacts to)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    code = next(block for block in blocks if events.UPLOAD_COMMITTED in block)
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    return namespace["run_indexing_after_each_commit"]


async def test_the_readme_automation_starts_the_downstream_deployment_on_commit_only(
    pipeline: Pipeline, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    job = f"nightly-{uuid.uuid4().hex[:8]}"
    files = make_tree(tmp_path / "source", 12)
    with temporary_settings({PREFECT_API_URL: pipeline.api_url}):
        await _readme_automation()(DEPLOYMENT)
    deployment = await _with_client(pipeline.api_url, lambda client: client.read_deployment_by_name(DEPLOYMENT))

    async def job_events(name: str) -> list[Any]:
        event_filter = EventFilter(
            occurred=EventOccurredFilter(since=datetime.now(timezone.utc) - timedelta(hours=1)),
            event=EventNameFilter(name=[name]),
            resource=EventResourceFilter(id=[f"rahcp.job.{job}"]),
        )
        page = await _with_client(pipeline.api_url, lambda client: client.read_events(filter=event_filter, limit=50))
        return page.events

    async def finished_downstream() -> list[Any] | None:
        runs = await _with_client(pipeline.api_url, lambda client: client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
        ))
        started = [run for run in runs if run.parameters.get("prefix") == "scans/"]
        return started if started and all(run.state and run.state.is_final() for run in started) else None

    rule = hcp_emulator.faults.add("data", method="PUT", path=r"top-0004\.txt", status=403, count=None)
    assert _upload(pipeline, tmp_path / "source", hcp_bucket, job) == "FAILED"
    hcp_emulator.faults.remove(rule)
    await _eventually(lambda: job_events(events.UPLOAD_ROLLED_BACK), "the rolled_back event")

    assert _upload(pipeline, tmp_path / "source", hcp_bucket, job) == "COMPLETED"
    committed = (await _eventually(lambda: job_events(events.UPLOAD_COMMITTED), "the committed event"))[0]
    assert committed.resource["rahcp.prefix"] == "scans/"
    assert committed.payload["counts"]["committed"] == committed.payload["counts"]["ok"] == len(files)
    assert committed.payload["bytes"] == sum(len(content) for content in files.values())

    runs = await _eventually(finished_downstream, "the downstream run the automation starts")
    assert len(runs) == 1, "only the commit may start the downstream deployment, not the rollback"
    assert runs[0].state.is_completed(), pipeline.worker_log.read_text()[-5000:]
    written = [json.loads(path.read_text()) for path in pipeline.markers.glob("*.json")]
    from_automation = [marker for marker in written if marker["prefix"] == "scans/"]
    assert len(from_automation) == 1 and from_automation[0]["token"] == pipeline.token
