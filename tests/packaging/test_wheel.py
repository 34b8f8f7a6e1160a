"""From a wheel to a running deployment, as a pip user meets it: the wheel built from the checkout,
installed (no extras) into a fresh virtual environment, used from a folder outside the checkout:
`rahcp-prefect setup` against a real `prefect server` and the emulator, then a worker of that
environment runs `bulk-upload/default` to completion."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rahcp_prefect.job import STAGING_ROOT
from rahcp_prefect.testing.records import without_records
from rahcp_prefect.testing.postgres import fresh_database
from rahcp_prefect.testing.prefect_fixtures import make_tree
from rahcp_prefect.testing.prefect_server import asyncpg_url, run_deployment, running_server, running_worker

PROJECT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(PROJECT), "-w", str(out)],
        capture_output=True, text=True, timeout=540,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (built,) = out.glob("rahcp_prefect-*.whl")
    return built


@pytest.fixture(scope="module")
def user_env(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv with only the wheel (and its dependencies) installed; yields its bin folder."""
    venv = tmp_path_factory.mktemp("user") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run(  # without PYTHONPATH: a checkout on it would count as rahcp-prefect installed
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-compile", str(wheel)],
        capture_output=True, text=True, timeout=900, env=clean,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    yield venv / "bin"


def _user_run(bin_dir: Path, *command: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(bin_dir / command[0]), *command[1:]], cwd=cwd, env={**clean, **env},
                          capture_output=True, text=True, timeout=300)


def test_the_wheel_carries_what_deploying_needs(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    assert {"rahcp_prefect/py.typed", "rahcp_prefect/deployments/prefect.yaml"} <= names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "License-Expression: Apache-2.0" in metadata
    assert "Project-URL: Repository," in metadata
    assert not any(n.startswith(("flows/", "deployments/", "tests/")) for n in names)


def _packaged_deployment_file(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as archive:
        return archive.read("rahcp_prefect/deployments/prefect.yaml")


def test_the_wheel_holds_exactly_the_checkouts_deployment_file(wheel: Path) -> None:
    assert _packaged_deployment_file(wheel) == (PROJECT / "deployments" / "prefect.yaml").read_bytes()
    assert not (PROJECT / "rahcp_prefect" / "deployments" / "prefect.yaml").exists()  # no second copy


def test_a_wheel_built_from_the_sdist_holds_the_same_deployment_file(tmp_path: Path) -> None:
    """``pip install`` from the sdist builds a wheel from it: the sdist must carry the file too."""
    builder = tmp_path / "builder"
    subprocess.run([sys.executable, "-m", "venv", str(builder)], check=True, timeout=300)
    python = str(builder / "bin" / "python")
    installed = subprocess.run([python, "-m", "pip", "install", "-q", "setuptools>=77", "wheel"],
                               capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr[-3000:]
    sdist_dir, wheel_dir = tmp_path / "sdist", tmp_path / "wheel"
    built = subprocess.run(
        [python, "-c", f"from setuptools import build_meta; build_meta.build_sdist({str(sdist_dir)!r})"],
        cwd=PROJECT, capture_output=True, text=True, timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (sdist,) = sdist_dir.glob("rahcp_prefect-*.tar.gz")
    wheel = subprocess.run([python, "-m", "pip", "wheel", "-q", "--no-deps", str(sdist), "-w", str(wheel_dir)],
                           capture_output=True, text=True, timeout=540)
    assert wheel.returncode == 0, wheel.stderr[-3000:]
    (from_sdist,) = wheel_dir.glob("rahcp_prefect-*.whl")
    assert _packaged_deployment_file(from_sdist) == (PROJECT / "deployments" / "prefect.yaml").read_bytes()


def test_prefect_file_prints_the_installed_wheels_file(user_env: Path, tmp_path: Path) -> None:
    result = _user_run(user_env, "rahcp-prefect", "prefect-file", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    printed = Path(result.stdout.strip())
    assert printed.is_relative_to(user_env.parent) and printed.parts[-3:] == ("rahcp_prefect", "deployments", "prefect.yaml")
    assert printed.read_bytes() == (PROJECT / "deployments" / "prefect.yaml").read_bytes()


def test_the_installed_package_is_the_wheel_not_the_checkout(user_env: Path, tmp_path: Path) -> None:
    result = _user_run(user_env, "python", "-c", "import rahcp_prefect; print(rahcp_prefect.__file__)", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).is_relative_to(user_env.parent)


def test_the_emulator_without_its_extra_names_the_extra(user_env: Path, tmp_path: Path) -> None:
    result = _user_run(user_env, "rahcp-prefect", "emulator", "--port", "0", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().startswith(
        "rahcp-prefect emulator: the HCP emulator needs the 'emulator' extra: pip install 'rahcp-prefect[emulator]'"
    ), result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_setup_then_a_worker_runs_bulk_upload_from_the_wheel(
    user_env: Path, postgres_dsn: str, hcp_emulator: Any, hcp_credentials: dict[str, Any], hcp_bucket: str,
    tmp_path: Path,
) -> None:
    outside = tmp_path / "elsewhere"  # a user's folder: no checkout, no flows/, no prefect.yaml
    outside.mkdir()
    files = make_tree(tmp_path / "source", 12)
    with fresh_database(postgres_dsn) as database, running_server(asyncpg_url(database), tmp_path / "server") as env:
        env = {**{k: v for k, v in env.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")},
               "HCP_PASSWORD": hcp_credentials["password"]}
        setup = subprocess.run(
            [str(user_env / "rahcp-prefect"), "setup", "--endpoint", hcp_credentials["endpoint"],
             "--username", hcp_credentials["username"], "--tenant", hcp_credentials["tenant"],
             "--tracker-sqlite", str(tmp_path / "tracker.db")],
            env=env, cwd=outside, capture_output=True, text=True, timeout=300,
        )
        assert setup.returncode == 0, setup.stdout[-3000:] + setup.stderr[-3000:]
        assert "Deployment bulk-upload/default" in setup.stdout
        with running_worker(env, "rahcp-process", outside, tmp_path / "worker.log", bin_dir=user_env):
            run = run_deployment(env, outside, "bulk-upload/default", f"source_dir={tmp_path / 'source'}",
                                 f"bucket={hcp_bucket}", "prefix=wheel/")
    worker_log = (tmp_path / "worker.log").read_text(errors="replace")
    assert run.returncode == 0 and "Completed" in run.stdout + run.stderr, run.stdout[-3000:] + worker_log[-5000:]
    s3 = hcp_emulator.s3
    listed = s3.list_objects_v2(Bucket=hcp_bucket, Prefix="wheel/").get("Contents", [])
    # the files, and the job's manifest beside them (rahcp_prefect.job.manifest)
    assert set(without_records(dict.fromkeys(item["Key"] for item in listed), "wheel/")) == {f"wheel/{rel}" for rel in files}
    sample = sorted(files)[5]
    assert s3.get_object(Bucket=hcp_bucket, Key=f"wheel/{sample}")["Body"].read() == files[sample]
    assert s3.list_objects_v2(Bucket=hcp_bucket, Prefix=STAGING_ROOT).get("KeyCount", 0) == 0
    assert hcp_credentials["password"] not in setup.stdout + setup.stderr + worker_log
