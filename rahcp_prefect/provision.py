"""One-shot set-up of a Prefect server for rahcp-prefect: blocks, work pool, deployments.

Used by ``rahcp-prefect setup`` (the docker-compose ``setup`` service and the end-to-end
test) so that a fresh server can run ``prefect deployment run bulk-upload/default``. It checks
the Prefect API, the HCP login, the tracker database, the deployment file and the work pool
first (``setup_checks``), so a failure creates nothing; a failure after that says what exists.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from rahcp_prefect.deployments import prefect_file as packaged_prefect_file
from rahcp_prefect.setup_checks import (
    DeploymentSpec,
    SetupError,
    check_hcp_login,
    check_prefect_api,
    check_tracker_dsn,
    check_work_pool,
    prefect_api_url,
    read_deployments,
)

logger = logging.getLogger(__name__)

DEPLOY_TIMEOUT_SECONDS = 600


@dataclass(frozen=True)
class SetupOptions:
    """What ``provision`` creates; the deployments are made on ``pool``, naming these blocks."""

    endpoint: str
    username: str
    password: str
    tenant: str | None = None
    verify_ssl: bool = True
    ca_bundle: str | None = None
    """PEM file of the archive's CA (made absolute: the worker runs elsewhere)."""
    tracker_dsn: str | None = None
    tracker_sqlite: str | None = None
    pool: str = "rahcp-process"
    credentials_block: str = "hcp"
    settings_block: str = "hcp-settings"
    tracker_block: str = "hcp-tracker"
    deploy: bool = True
    prefect_file: Path | None = None
    """A ``prefect.yaml`` of one's own; default: ``deployments/prefect.yaml`` (shipped in the wheel)."""

    def deployment_file(self) -> Path:
        """The ``prefect.yaml`` to deploy, as an absolute path."""
        return (self.prefect_file or packaged_prefect_file()).resolve()


async def ensure_work_pool(name: str) -> None:
    """Create a process work pool called ``name`` unless it exists."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    async with get_client() as client:
        try:
            await client.create_work_pool(WorkPoolCreate(name=name, type="process"))
            logger.info("created work pool %s", name)
        except ObjectAlreadyExists:
            logger.info("work pool %s already exists", name)


async def save_blocks(options: SetupOptions) -> None:
    """Register the block types and save the three blocks the deployments reference."""
    from rahcp_prefect.blocks import HCPBucket, HCPCredentials, HCPTracker, HCPTransferSettings

    for block_type in (HCPCredentials, HCPTransferSettings, HCPTracker, HCPBucket):
        await block_type.register_type_and_schema()
    credentials = HCPCredentials(
        endpoint=options.endpoint,
        username=options.username,
        password=SecretStr(options.password),
        tenant=options.tenant,
        verify_ssl=options.verify_ssl,
        ca_bundle=options.ca_bundle,
    )
    await credentials.save(options.credentials_block, overwrite=True)
    await HCPTransferSettings().save(options.settings_block, overwrite=True)
    tracker = HCPTracker(
        sqlite_path=options.tracker_sqlite,
        postgres_dsn=SecretStr(options.tracker_dsn) if options.tracker_dsn else None,
    )
    await tracker.save(options.tracker_block, overwrite=True)


BLOCK_PARAMETERS = ("credentials_block", "settings_block", "tracker_block")


def deployments_for(prefect_file: Path, pool: str, blocks: dict[str, str]) -> dict[str, Any]:
    """The content of ``prefect_file`` with every deployment on ``pool`` and its block parameters
    naming ``blocks`` (``credentials_block`` -> name...), where the deployment has them.

    Prefect 3.9's ``prefect deploy --all`` ignores ``--pool`` ("These options will be ignored"),
    so the pool has to be in the file itself.
    """
    import yaml

    content: dict[str, Any] = yaml.safe_load(prefect_file.read_text())
    for deployment in content.get("deployments") or []:
        work_pool = deployment.get("work_pool") or {}
        deployment["work_pool"] = {**work_pool, "name": pool}
        parameters = deployment.get("parameters") or {}
        for parameter, name in blocks.items():
            if parameter in parameters:
                parameters[parameter] = name
    return content


def deploy_all(prefect_file: Path, pool: str, api_url: str, blocks: dict[str, str] | None = None) -> None:
    """Run ``prefect deploy --all`` on ``prefect_file`` against ``api_url``, every deployment on ``pool``.

    What is deployed is ``deployments_for(prefect_file, pool, blocks)``, written to a temporary
    file; Prefect runs in ``prefect_file``'s folder, so relative entrypoints of one's own file
    resolve as Prefect expects (the packaged file's entrypoints are modules and resolve from
    anywhere). Prefect's output is kept back; a failure raises ``SetupError`` with its last line.
    """
    import tempfile

    import yaml

    prefect = Path(sys.executable).with_name("prefect")
    content = deployments_for(prefect_file, pool, blocks or {})
    with tempfile.TemporaryDirectory(prefix="rahcp-deploy-") as folder:
        deployed = Path(folder) / prefect_file.name
        deployed.write_text(yaml.safe_dump(content, sort_keys=False))
        command = [str(prefect) if prefect.exists() else "prefect", "--no-prompt", "deploy", "--all"]
        command += ["--prefect-file", str(deployed)]
        try:
            result = subprocess.run(
                command, cwd=prefect_file.parent, env={**os.environ, "PREFECT_API_URL": api_url},
                capture_output=True, text=True, timeout=DEPLOY_TIMEOUT_SECONDS,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SetupError(f"`prefect deploy` did not run: {exc}") from None
    if result.returncode != 0:
        last = _reason(result.stdout + result.stderr)
        raise SetupError(
            f"`prefect deploy` failed (exit {result.returncode}): {last} "
            "(deployments listed before the failing one in the file may exist)"
        )


_NOISE = ("For further information", "Traceback", "File ", "^", "Error: Invalid value for")


def _reason(output: str) -> str:
    """The line of ``prefect deploy``'s output that says why: the last one naming an error."""
    lines = [line.strip(" │╭╰─\t") for line in output.splitlines()]
    lines = [line for line in lines if line and not line.startswith(_NOISE)]
    errors = [line for line in lines if "rror" in line or "invalid" in line.lower()]
    return (errors or lines or ["no output"])[-1][:300]


async def check(options: SetupOptions) -> list[DeploymentSpec]:
    """Everything setup needs, before it creates anything; returns the deployments to make."""
    await check_prefect_api(prefect_api_url())
    await check_hcp_login(
        options.endpoint, options.username, options.password, options.tenant, options.verify_ssl, options.ca_bundle
    )
    if options.tracker_dsn:
        check_tracker_dsn(options.tracker_dsn)
    specs = read_deployments(options.deployment_file()) if options.deploy else []
    await check_work_pool(options.pool)
    return specs


async def provision(options: SetupOptions, done: list[str] | None = None) -> list[DeploymentSpec]:
    """Check, then create the pool, the blocks and the deployments; returns the deployments.

    ``done`` collects what was created, in order, so a failure part-way can say what exists.
    """
    done = [] if done is None else done
    specs = await check(options)
    await ensure_work_pool(options.pool)
    done.append(f"work pool {options.pool}")
    await save_blocks(options)
    done.append(f"blocks {options.credentials_block}, {options.settings_block}, {options.tracker_block}")
    if options.deploy:
        blocks = {"credentials_block": options.credentials_block, "settings_block": options.settings_block,
                  "tracker_block": options.tracker_block}
        deploy_all(options.deployment_file(), options.pool, prefect_api_url(), blocks)
        done.append("deployments " + ", ".join(str(spec) for spec in specs))
    return specs


def add_setup_arguments(parser: Any) -> None:
    """Options of ``rahcp-prefect setup``; secrets default to the ``HCP_*`` environment."""
    parser.add_argument("--endpoint", default=os.environ.get("HCP_ENDPOINT"), help="HCP API base URL, ending in /api/v1 (HCP_ENDPOINT)")
    parser.add_argument("--username", default=os.environ.get("HCP_USERNAME"), help="HCP user (HCP_USERNAME)")
    parser.add_argument(
        "--password",
        default=os.environ.get("HCP_PASSWORD"),
        help="HCP password (prefer the HCP_PASSWORD variable: arguments show in process lists)",
    )
    parser.add_argument("--tenant", default=os.environ.get("HCP_TENANT") or None, help="HCP tenant (HCP_TENANT)")
    parser.add_argument("--no-verify-ssl", action="store_true", help="do not verify TLS certificates")
    parser.add_argument(
        "--ca-bundle",
        default=os.environ.get("HCP_CA_BUNDLE") or None,
        help="PEM file of the archive's CA certificate(s), trusted for the API and S3 (HCP_CA_BUNDLE)",
    )
    parser.add_argument("--tracker-dsn", default=os.environ.get("RAHCP_TRACKER_DSN"), help="shared PostgreSQL tracker (RAHCP_TRACKER_DSN)")
    parser.add_argument("--tracker-sqlite", default=None, help="SQLite tracker file (default ~/.rahcp/tracker.db)")
    parser.add_argument("--pool", default="rahcp-process", help="process work pool to create and deploy every deployment to")
    parser.add_argument("--no-deploy", action="store_true", help="only blocks and work pool")
    parser.add_argument(
        "--prefect-file", type=Path, default=None, help="deploy this prefect.yaml instead of rahcp-prefect's own"
    )
    parser.set_defaults(func=run_setup)


def run_setup(args: Any) -> int:
    """``rahcp-prefect setup``: check everything, then provision; any failure is one line."""
    missing = [name for name in ("endpoint", "username", "password") if not getattr(args, name)]
    if missing:
        raise SystemExit(
            "rahcp-prefect setup: missing " + ", ".join(f"--{name}" for name in missing)
            + " (or the HCP_ENDPOINT / HCP_USERNAME / HCP_PASSWORD variables)"
        )
    options = SetupOptions(
        endpoint=args.endpoint,
        username=args.username,
        password=args.password,
        tenant=args.tenant,
        verify_ssl=not args.no_verify_ssl,
        ca_bundle=args.ca_bundle,
        tracker_dsn=args.tracker_dsn,
        tracker_sqlite=args.tracker_sqlite,
        pool=args.pool,
        deploy=not args.no_deploy,
        prefect_file=args.prefect_file,
    )
    return setup(options)


def setup(options: SetupOptions) -> int:
    """Provision with ``options`` and print what exists; a failure exits with one line."""
    import asyncio

    done: list[str] = []
    try:
        specs = asyncio.run(provision(options, done))
    except SetupError as exc:
        raise SystemExit(f"rahcp-prefect setup: {exc}" + _created_so_far(done)) from None
    except Exception as exc:  # a step that failed in a way no check foresaw: still one line
        raise SystemExit(f"rahcp-prefect setup: {type(exc).__name__}: {exc}" + _created_so_far(done)) from None
    print(f"Work pool {options.pool}; blocks {options.credentials_block}, {options.settings_block}, "
          f"{options.tracker_block} on {prefect_api_url()}")
    for spec in specs:
        print(f"Deployment {spec}")
    if specs:
        print(f"Start a worker: prefect worker start --pool {options.pool}")
    return 0


def _created_so_far(done: list[str]) -> str:
    if not done:
        return " (nothing was created)"
    return f" (already created: {'; '.join(done)}; running setup again overwrites them)"
