"""One-shot set-up of a Prefect server for rahcp-prefect: blocks, work pool, deployments.

Used by ``rahcp-prefect setup`` (the docker-compose ``setup`` service and the end-to-end
test) so that a fresh server can run ``prefect deployment run bulk-upload/default``.
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

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class SetupOptions:
    """What ``provision`` creates; block names match ``rahcp_prefect/deployments/prefect.yaml``."""

    endpoint: str
    username: str
    password: str
    tenant: str | None = None
    verify_ssl: bool = True
    tracker_dsn: str | None = None
    tracker_sqlite: str | None = None
    pool: str = "rahcp-process"
    credentials_block: str = "hcp"
    settings_block: str = "hcp-settings"
    tracker_block: str = "hcp-tracker"
    deploy: bool = True
    prefect_file: Path | None = None
    """A ``prefect.yaml`` of one's own; default: the one shipped in the package."""


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
    )
    await credentials.save(options.credentials_block, overwrite=True)
    await HCPTransferSettings().save(options.settings_block, overwrite=True)
    tracker = HCPTracker(
        sqlite_path=options.tracker_sqlite,
        postgres_dsn=SecretStr(options.tracker_dsn) if options.tracker_dsn else None,
    )
    await tracker.save(options.tracker_block, overwrite=True)


def deploy_all(prefect_file: Path | None = None) -> None:
    """Run ``prefect deploy --all`` on ``prefect_file`` (default: the packaged ``prefect.yaml``).

    Runs in the file's folder, so relative entrypoints of one's own file resolve as Prefect
    expects; the packaged file's entrypoints are modules and resolve from anywhere.
    """
    prefect_file = (prefect_file or packaged_prefect_file()).resolve()
    if not prefect_file.is_file():
        raise FileNotFoundError(f"deployment file not found: {prefect_file}")
    prefect = Path(sys.executable).with_name("prefect")
    command = [str(prefect) if prefect.exists() else "prefect", "--no-prompt", "deploy", "--all"]
    subprocess.run([*command, "--prefect-file", str(prefect_file)], cwd=prefect_file.parent, check=True)


async def provision(options: SetupOptions) -> None:
    """Everything a fresh Prefect server needs to run the bulk deployments."""
    await ensure_work_pool(options.pool)
    await save_blocks(options)
    if options.deploy:
        deploy_all(options.prefect_file)


def add_setup_arguments(parser: Any) -> None:
    """Options of ``rahcp-prefect setup``; secrets default to the ``HCP_*`` environment."""
    parser.add_argument("--endpoint", default=os.environ.get("HCP_ENDPOINT"), help="HCP API base URL (HCP_ENDPOINT)")
    parser.add_argument("--username", default=os.environ.get("HCP_USERNAME"), help="HCP user (HCP_USERNAME)")
    parser.add_argument(
        "--password",
        default=os.environ.get("HCP_PASSWORD"),
        help="HCP password (prefer the HCP_PASSWORD variable: arguments show in process lists)",
    )
    parser.add_argument("--tenant", default=os.environ.get("HCP_TENANT") or None)
    parser.add_argument("--no-verify-ssl", action="store_true", help="do not verify TLS certificates")
    parser.add_argument("--tracker-dsn", default=os.environ.get("RAHCP_TRACKER_DSN"), help="shared PostgreSQL tracker (RAHCP_TRACKER_DSN)")
    parser.add_argument("--tracker-sqlite", default=None, help="SQLite tracker file (default ~/.rahcp/tracker.db)")
    parser.add_argument("--pool", default="rahcp-process", help="process work pool to create")
    parser.add_argument("--no-deploy", action="store_true", help="only blocks and work pool")
    parser.add_argument(
        "--prefect-file", type=Path, default=None, help="deploy this prefect.yaml instead of the packaged one"
    )
    parser.set_defaults(func=run_setup)


def run_setup(args: Any) -> int:
    """``rahcp-prefect setup``: check the options, then provision the Prefect server."""
    import asyncio

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
        tracker_dsn=args.tracker_dsn,
        tracker_sqlite=args.tracker_sqlite,
        pool=args.pool,
        deploy=not args.no_deploy,
        prefect_file=args.prefect_file,
    )
    asyncio.run(provision(options))
    print(f"Blocks {options.credentials_block}, {options.settings_block}, {options.tracker_block}; pool {options.pool}"
          + ("; deployments created" if options.deploy else ""))
    return 0
