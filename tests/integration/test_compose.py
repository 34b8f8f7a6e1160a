"""The docker-compose stack is a valid compose file with every service the issue names."""

from __future__ import annotations

import importlib
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prefect import Flow

from rahcp_prefect.deployments import prefect_file

PROJECT = Path(__file__).resolve().parents[2]
SERVICES = {"postgres", "prefect-server", "s3", "emulator", "worker", "setup"}


def _compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_compose_config_validates() -> None:
    command = _compose_command()
    if command is None:
        pytest.skip("neither 'docker compose' nor 'docker-compose' is installed")
    result = subprocess.run(
        [*command, "-f", "docker-compose.yml", "config"], cwd=PROJECT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(result.stdout)
    assert set(rendered["services"]) == SERVICES
    worker = rendered["services"]["worker"]
    command_text = worker["command"] if isinstance(worker["command"], str) else " ".join(worker["command"])
    assert "prefect worker start --pool rahcp-process" in command_text
    server_env = rendered["services"]["prefect-server"]["environment"]
    assert server_env["PREFECT_API_DATABASE_CONNECTION_URL"].startswith("postgresql+asyncpg://")


def test_compose_services_reference_what_the_repo_has() -> None:
    compose = yaml.safe_load((PROJECT / "docker-compose.yml").read_text())
    assert (PROJECT / compose["x-rahcp-image"]["build"]["dockerfile"]).is_file()
    setup = compose["services"]["setup"]["command"]
    assert setup.startswith("rahcp-prefect setup")
    assert "rahcp-process" in setup
    deployments = yaml.safe_load(prefect_file().read_text())
    pools = {d["work_pool"]["name"] for d in deployments["deployments"]}
    assert pools == {"rahcp-process"}
    for deployment in deployments["deployments"]:
        module, _, function = deployment["entrypoint"].partition(":")
        assert isinstance(getattr(importlib.import_module(module), function), Flow), deployment["entrypoint"]
