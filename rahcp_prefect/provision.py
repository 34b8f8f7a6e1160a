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

from pydantic import SecretStr

from rahcp_prefect.blocks import HCPCredentials, HCPTracker, HCPTransferSettings

logger = logging.getLogger(__name__)

PROJECT_DIR = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class SetupOptions:
    """What ``provision`` creates; block names match ``deployments/prefect.yaml``."""

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
    prefect_file: Path = PROJECT_DIR / "deployments" / "prefect.yaml"


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
    for block_type in (HCPCredentials, HCPTransferSettings, HCPTracker):
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


def deploy_all(prefect_file: Path, project_dir: Path = PROJECT_DIR) -> None:
    """Run ``prefect deploy --all`` on ``prefect_file`` from the project directory."""
    if not prefect_file.is_file():
        raise FileNotFoundError(f"deployment file not found: {prefect_file}")
    env = {**os.environ, "RAHCP_PROJECT_DIR": str(project_dir)}
    prefect = Path(sys.executable).with_name("prefect")
    command = [str(prefect) if prefect.exists() else "prefect", "--no-prompt", "deploy", "--all"]
    subprocess.run(
        [*command, "--prefect-file", str(prefect_file)], cwd=project_dir, env=env, check=True
    )


async def provision(options: SetupOptions) -> None:
    """Everything a fresh Prefect server needs to run the bulk deployments."""
    await ensure_work_pool(options.pool)
    await save_blocks(options)
    if options.deploy:
        deploy_all(options.prefect_file)
