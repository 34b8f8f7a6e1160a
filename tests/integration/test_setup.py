"""`rahcp-prefect setup` fails with one line and creates nothing when a check fails, and says what
it created when a later step fails. Against the session's real Prefect API and the emulator.

The full success path (setup, worker, deployment run) is tests/integration/test_deployment_e2e.py
and, from a wheel outside the checkout, tests/packaging/test_wheel.py.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from rahcp_prefect.provision import SetupOptions, ensure_work_pool, setup

BIN = Path(sys.executable).parent


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def options(prefect_api: None, hcp_credentials: dict[str, Any]) -> SetupOptions:
    """Setup options for the emulator with names of their own, so each test sees only its own."""
    suffix = uuid.uuid4().hex[:8]
    return SetupOptions(
        endpoint=hcp_credentials["endpoint"],
        username=hcp_credentials["username"],
        password=hcp_credentials["password"],
        tenant=hcp_credentials["tenant"],
        pool=f"pool-{suffix}",
        credentials_block=f"hcp-{suffix}",
        settings_block=f"settings-{suffix}",
        tracker_block=f"tracker-{suffix}",
        deploy=False,
    )


def _existing(options: SetupOptions) -> set[str]:
    """Which of the pool and blocks named in ``options`` exist on the Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    async def look() -> set[str]:
        found = set()
        async with get_client() as client:
            try:
                await client.read_work_pool(options.pool)
                found.add(options.pool)
            except ObjectNotFound:
                pass
            for slug, name in (("hcp-credentials", options.credentials_block),
                               ("hcp-transfer-settings", options.settings_block),
                               ("hcp-tracker", options.tracker_block)):
                try:
                    await client.read_block_document_by_name(name, block_type_slug=slug)
                    found.add(name)
                except ObjectNotFound:
                    pass
        return found

    return asyncio.run(look())


def _fails(options: SetupOptions, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as info:
        setup(options)
    message = str(info.value.code)
    assert message.startswith("rahcp-prefect setup: ") and "\n" not in message, message
    assert "Traceback" not in message + capsys.readouterr().err
    return message


def _fails_creating_nothing(options: SetupOptions, capsys: pytest.CaptureFixture[str], **changes: Any) -> str:
    """Setup with ``changes`` fails with one line, says so, and left no pool or block behind."""
    message = _fails(replace(options, **changes), capsys)
    assert message.endswith("(nothing was created)"), message
    assert _existing(options) == set()
    return message


def test_blocks_and_pool_when_every_check_passes(options: SetupOptions, capsys: pytest.CaptureFixture[str]) -> None:
    assert setup(options) == 0
    assert _existing(options) == {options.pool, options.credentials_block, options.settings_block, options.tracker_block}
    assert f"Work pool {options.pool}" in capsys.readouterr().out


def test_endpoint_without_api_v1_creates_nothing(
    options: SetupOptions, hcp_emulator: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    root = hcp_emulator.root_url.rstrip("/")
    message = _fails_creating_nothing(options, capsys, endpoint=root)
    assert f"HCP login failed: 404 at {root}/auth/token" in message
    assert f"add /api/v1 ({root}/api/v1)" in message


def test_hcp_not_running_names_the_url_and_creates_nothing(
    options: SetupOptions, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}/api/v1"
    message = _fails_creating_nothing(options, capsys, endpoint=endpoint)
    assert f"could not reach {endpoint}/auth/token" in message


def test_bad_tracker_dsn_creates_nothing_and_shows_no_password(
    options: SetupOptions, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = f"postgresql://rahcp:Very-Secret-9@127.0.0.1:{_closed_port()}/tracker"
    message = _fails_creating_nothing(options, capsys, tracker_dsn=dsn)
    assert "cannot connect to the tracker database postgresql://rahcp:***@127.0.0.1:" in message
    assert "Very-Secret-9" not in message


def test_broken_deployment_file_creates_nothing(
    options: SetupOptions, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prefect_file = tmp_path / "prefect.yaml"
    prefect_file.write_text("deployments:\n  - name: default\n    entrypoint: rahcp_prefect.flows.upload:no_such_flow\n")
    message = _fails_creating_nothing(options, capsys, deploy=True, prefect_file=prefect_file)
    assert f"{prefect_file}: cannot load entrypoint rahcp_prefect.flows.upload:no_such_flow" in message


def test_a_pool_of_another_type_is_refused(options: SetupOptions, capsys: pytest.CaptureFixture[str]) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    async def make_pool() -> None:
        async with get_client() as client:
            await client.create_work_pool(WorkPoolCreate(name=options.pool, type="prefect-agent"))

    asyncio.run(make_pool())
    message = _fails(options, capsys)
    assert f"work pool {options.pool!r} exists with type 'prefect-agent'" in message
    assert _existing(options) == {options.pool}  # only the one made above


def test_a_deploy_that_fails_late_says_what_it_created(
    options: SetupOptions, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prefect_file = tmp_path / "prefect.yaml"
    prefect_file.write_text(
        "deployments:\n  - name: default\n    entrypoint: rahcp_prefect.flows.cleanup:cleanup_staging\n"
        "    work_pool:\n      name: rahcp-process\n    schedules:\n      - cron: not-a-cron-expression\n"
    )
    message = _fails(replace(options, deploy=True, prefect_file=prefect_file), capsys)
    assert "`prefect deploy` failed (exit 1)" in message
    assert (f"already created: work pool {options.pool}; blocks {options.credentials_block}, "
            f"{options.settings_block}, {options.tracker_block}; running setup again overwrites them") in message
    assert _existing(options) == {options.pool, options.credentials_block, options.settings_block, options.tracker_block}


def _run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "HCP_"))}
    return subprocess.run([str(BIN / "rahcp-prefect"), *args], env={**clean, **env},
                          capture_output=True, text=True, timeout=120)


def test_missing_credentials_say_the_flags_and_variables(tmp_path: Path) -> None:
    result = _run_cli("setup", "--endpoint", "https://hcp.example/api/v1", PREFECT_HOME=str(tmp_path))
    assert result.returncode != 0
    assert result.stderr.strip() == (
        "rahcp-prefect setup: missing --username, --password (or the HCP_ENDPOINT / HCP_USERNAME / HCP_PASSWORD variables)"
    )


def test_no_prefect_api_url_is_one_line(tmp_path: Path) -> None:
    result = _run_cli("setup", "--endpoint", "https://hcp.example/api/v1", "--username", "u",
                      PREFECT_HOME=str(tmp_path), HCP_PASSWORD="pw")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("rahcp-prefect setup: PREFECT_API_URL is not set: start a server")
    assert len(result.stderr.strip().splitlines()) == 1


def test_prefect_server_not_running_names_the_url(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/api"
    result = _run_cli("setup", "--endpoint", "https://hcp.example/api/v1", "--username", "u",
                      PREFECT_HOME=str(tmp_path), HCP_PASSWORD="pw", PREFECT_API_URL=url)
    assert result.returncode == 1
    assert result.stderr.strip().startswith(f"rahcp-prefect setup: cannot reach the Prefect API at {url} (")
    assert result.stderr.strip().endswith("(nothing was created)")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_setup_with_a_pool_of_its_own_deploys_there_and_its_worker_runs_them(
    postgres_dsn: str, hcp_emulator: Any, hcp_credentials: dict[str, Any], hcp_bucket: str, tmp_path: Path
) -> None:
    """`rahcp-prefect setup --pool NAME` against a real `prefect server`: every deployment of the
    file names NAME (Prefect 3.9's `deploy --all` ignores `--pool`), and a worker of NAME runs one."""
    import httpx

    from rahcp_prefect.deployments import prefect_file
    from rahcp_prefect.setup_checks import read_deployments
    from rahcp_prefect.testing.postgres import fresh_database
    from rahcp_prefect.testing.prefect_fixtures import make_tree
    from rahcp_prefect.testing.prefect_server import asyncpg_url, run_deployment, running_server, running_worker

    pool = f"archive-{uuid.uuid4().hex[:6]}"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    files = make_tree(tmp_path / "source", 5)
    with fresh_database(postgres_dsn) as database, running_server(asyncpg_url(database), tmp_path / "server") as env:
        env = {**env, "HCP_PASSWORD": hcp_credentials["password"]}
        setup_run = subprocess.run(
            [str(BIN / "rahcp-prefect"), "setup", "--pool", pool, "--endpoint", hcp_credentials["endpoint"],
             "--username", hcp_credentials["username"], "--tenant", hcp_credentials["tenant"],
             "--tracker-sqlite", str(tmp_path / "tracker.db")],
            env=env, cwd=outside, capture_output=True, text=True, timeout=300,
        )
        assert setup_run.returncode == 0, setup_run.stdout[-3000:] + setup_run.stderr[-3000:]
        assert f"Start a worker: prefect worker start --pool {pool}" in setup_run.stdout
        api = env["PREFECT_API_URL"]
        expected = [str(spec) for spec in read_deployments(prefect_file())]
        pools = {name: httpx.get(f"{api}/deployments/name/{name}", timeout=30).json()["work_pool_name"]
                 for name in expected}
        assert pools == {name: pool for name in expected}
        assert httpx.post(f"{api}/work_pools/filter", json={}, timeout=30).json()[0]["name"] == pool
        with running_worker(env, pool, outside, tmp_path / "worker.log"):
            run = run_deployment(env, outside, "bulk-upload/default", f"source_dir={tmp_path / 'source'}",
                                 f"bucket={hcp_bucket}", "prefix=pool/")
    worker_log = (tmp_path / "worker.log").read_text(errors="replace")
    assert run.returncode == 0 and "Completed" in run.stdout + run.stderr, run.stdout[-3000:] + worker_log[-5000:]
    listed = hcp_emulator.s3.list_objects_v2(Bucket=hcp_bucket, Prefix="pool/").get("Contents", [])
    assert {f"pool/{rel}" for rel in files} <= {item["Key"] for item in listed}


def test_the_deployed_file_names_the_pool_and_the_blocks_setup_made() -> None:
    from rahcp_prefect.deployments import prefect_file
    from rahcp_prefect.provision import deployments_for

    blocks = {"credentials_block": "c", "settings_block": "s", "tracker_block": "t"}
    content = deployments_for(prefect_file(), "elsewhere", blocks)
    assert {d["work_pool"]["name"] for d in content["deployments"]} == {"elsewhere"}
    upload = next(d for d in content["deployments"] if d["entrypoint"].endswith(":bulk_upload"))
    assert {k: upload["parameters"][k] for k in blocks} == blocks
    cleanup = next(d for d in content["deployments"] if d["entrypoint"].endswith(":cleanup_staging"))
    assert "settings_block" not in cleanup["parameters"]  # only the parameters a deployment has
    assert upload["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}  # the rest unchanged


@pytest.mark.timeout(600)
def test_prefect_deploy_all_of_the_checkouts_file_works_from_the_checkout(prefect_api: None) -> None:
    """`prefect deploy --all --prefect-file deployments/prefect.yaml`, as the file's header says."""
    import httpx
    from prefect.settings import PREFECT_API_URL

    from rahcp_prefect.deployments import checkout_prefect_file
    from rahcp_prefect.setup_checks import read_deployments

    checkout = checkout_prefect_file().parents[1]
    asyncio.run(ensure_work_pool("rahcp-process"))
    api = str(PREFECT_API_URL.value())
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}, "PREFECT_API_URL": api}
    result = subprocess.run(
        [str(BIN / "prefect"), "--no-prompt", "deploy", "--all", "--prefect-file", "deployments/prefect.yaml"],
        cwd=checkout, env=env, capture_output=True, text=True, timeout=540,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for spec in read_deployments(checkout / "deployments" / "prefect.yaml"):
        deployment = httpx.get(f"{api}/deployments/name/{spec}", timeout=30).json()
        assert deployment["work_pool_name"] == "rahcp-process", deployment
