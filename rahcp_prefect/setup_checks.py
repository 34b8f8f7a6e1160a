"""What ``rahcp-prefect setup`` checks before it creates anything: the Prefect API, the HCP login,
the tracker database, the deployment file and the work pool.

Each check raises ``SetupError`` with one line saying what is wrong and what was tried, so a
failed set-up leaves the Prefect server as it was.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from rahcp_prefect.errors import RahcpError


class SetupError(RahcpError):
    """A set-up step that cannot go ahead; the message is one line for the person running it."""


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment of a ``prefect.yaml``: ``<flow name>/<deployment name>``."""

    flow_name: str
    name: str

    def __str__(self) -> str:
        return f"{self.flow_name}/{self.name}"


def prefect_api_url() -> str:
    """The Prefect API setup will write to; a server must be running (workers need one too)."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        raise SetupError(
            "PREFECT_API_URL is not set: start a server (`prefect server start`) and set "
            "PREFECT_API_URL=http://127.0.0.1:4200/api (or `prefect config set PREFECT_API_URL=...`)"
        )
    return str(url)


async def check_prefect_api(url: str) -> None:
    """The Prefect API at ``url`` answers its health check."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        failure = await client.api_healthcheck()
    if failure is not None:
        raise SetupError(f"cannot reach the Prefect API at {url} ({type(failure).__name__}): is `prefect server start` running?")


async def check_hcp_login(
    endpoint: str, username: str, password: str, tenant: str | None, verify_ssl: bool, ca_bundle: str | None = None
) -> None:
    """Log in to HCP once with the credentials the block will hold (few retries: fail fast)."""
    from rahcp_prefect.client import CertificateError, HCPClient, HCPError

    try:
        client = HCPClient(
            endpoint=endpoint, username=username, password=password, tenant=tenant, verify_ssl=verify_ssl,
            ca_bundle=ca_bundle, max_retries=1, retry_base_delay=0.5, retry_deadline=0, timeout=15.0,
        )
    except ValueError as exc:  # a bad endpoint or ca_bundle, named
        raise SetupError(str(exc)) from None
    try:
        async with client:
            pass
    except CertificateError as exc:
        raise SetupError(f"HCP: {exc.message}") from None
    except HCPError as exc:
        reason = exc.message[:1].lower() + exc.message[1:]  # "login failed: 404 at ..."
        raise SetupError(f"HCP {reason} (user {username!r})") from None


def check_tracker_dsn(dsn: str) -> None:
    """The PostgreSQL tracker database accepts a connection (its tables are made on first use)."""
    import psycopg

    from rahcp_prefect.tracker.dsn import mask_dsn, redact

    try:
        psycopg.connect(dsn, connect_timeout=10).close()
    except psycopg.Error as exc:
        reason = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, dsn)
        raise SetupError(f"cannot connect to the tracker database {mask_dsn(dsn)}: {reason}") from None


def read_deployments(prefect_file: Path) -> list[DeploymentSpec]:
    """The deployments ``prefect_file`` defines, each entrypoint imported and checked to be a flow."""
    import yaml
    from prefect import Flow

    if not prefect_file.is_file():
        raise SetupError(f"deployment file not found: {prefect_file}")
    try:
        content: Any = yaml.safe_load(prefect_file.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SetupError(f"cannot read {prefect_file}: {str(exc).splitlines()[0]}") from None
    entries = content.get("deployments") if isinstance(content, dict) else None
    if not entries:
        raise SetupError(f"{prefect_file} defines no deployments")
    specs = []
    for entry in entries:
        entrypoint = str(entry.get("entrypoint", ""))
        flow = _load_entrypoint(entrypoint, prefect_file)
        if not isinstance(flow, Flow):
            raise SetupError(f"{prefect_file}: entrypoint {entrypoint} is not a Prefect flow")
        specs.append(DeploymentSpec(flow.name, str(entry.get("name", ""))))
    return specs


def _load_entrypoint(entrypoint: str, prefect_file: Path) -> Any:
    """``module:attr`` imported, or ``path.py:attr`` loaded relative to the file's folder."""
    target, _, attribute = entrypoint.rpartition(":")
    if not target or not attribute:
        raise SetupError(f"{prefect_file}: entrypoint {entrypoint!r} is not of the form module:flow or path.py:flow")
    try:
        if target.endswith(".py"):
            from prefect.utilities.importtools import load_script_as_module

            module: Any = load_script_as_module(str(prefect_file.parent / target))
        else:
            module = importlib.import_module(target)
        return getattr(module, attribute)
    except Exception as exc:
        raise SetupError(f"{prefect_file}: cannot load entrypoint {entrypoint}: {type(exc).__name__}: {exc}") from None


async def check_work_pool(name: str) -> bool:
    """True if a process pool ``name`` exists, False if none does; another type is an error."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    async with get_client() as client:
        try:
            pool = await client.read_work_pool(name)
        except ObjectNotFound:
            return False
    if pool.type != "process":
        raise SetupError(f"work pool {name!r} exists with type {pool.type!r}; the deployments need a process pool (--pool NAME)")
    return True
