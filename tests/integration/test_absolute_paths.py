"""Paths a user gives are made absolute where they are given: a tracker file named at ``setup``
(or on a saved block), and a folder given to a flow called in Python. A relative folder in a
deployment's run could only mean the worker's temporary directory: refused, naming it.

End to end: ``rahcp-prefect setup --tracker-sqlite tracker.db`` in a project folder, a real
``prefect worker start`` in another folder, two nights of ``bulk-upload/default``: night 2 sends
no file, and the tracker is the project folder's.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from rahcp_prefect.blocks import HCPCredentials, HCPTracker
from rahcp_prefect.bulk.validation import InvalidInputError, local_folder
from rahcp_prefect.testing.prefect_server import BIN, run_deployment, running_worker

from .conftest import make_tree
from .test_deployment_e2e import prefect_server  # noqa: F401 - the fixture: a real server on PostgreSQL


def test_a_saved_blocks_paths_are_absolute_against_the_saving_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert HCPTracker(sqlite_path="state/tracker.db").sqlite_path == str(tmp_path / "state" / "tracker.db")
    assert HCPTracker(sqlite_path="~/t.db").sqlite_path == "~/t.db"  # the home of the machine that runs
    assert HCPTracker(sqlite_path="/srv/t.db").sqlite_path == "/srv/t.db"
    credentials = HCPCredentials(username="u", password="p", ca_bundle="certs/ca.pem")
    assert credentials.ca_bundle == str(tmp_path / "certs" / "ca.pem")
    # loaded again elsewhere (a worker), the stored absolute path stays what it was
    monkeypatch.chdir("/")
    reloaded = HCPTracker.model_validate(HCPTracker(sqlite_path=str(tmp_path / "t.db")).model_dump())
    assert reloaded.sqlite_path == str(tmp_path / "t.db")


def test_a_relative_folder_means_the_callers_folder_in_python_and_is_refused_in_a_deployment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert local_folder("source_dir", "data/in", in_deployment=False) == tmp_path / "data" / "in"
    assert local_folder("dest_dir", "/data/out", in_deployment=True) == Path("/data/out")
    with pytest.raises(InvalidInputError) as info:
        local_folder("dest_dir", "restore", in_deployment=True)
    message = str(info.value)
    assert message.startswith("dest_dir 'restore' is a relative path: a deployment's run starts in the worker's")
    assert str(tmp_path) in message and "give dest_dir as an absolute path" in message
    with pytest.raises(InvalidInputError, match="source_dir must be a folder path"):
        local_folder("source_dir", "  ", in_deployment=False)


MANIFEST = 2
"""PUTs a night may make without sending a file: the job's manifest and its files' times."""


def _data_puts(emulator: Any) -> int:
    return sum(n for (plane, method, _route), n in emulator.request_counts.items() if plane == "data" and method == "PUT")


@pytest.mark.timeout(600)
def test_setup_in_one_folder_a_worker_in_another_two_nights_and_night_two_sends_nothing(
    prefect_server: dict[str, str],  # noqa: F811
    hcp_emulator: Any,
    hcp_credentials: dict[str, Any],
    hcp_bucket: str,
    tmp_path: Path,
) -> None:
    env = {**prefect_server, "HCP_PASSWORD": hcp_credentials["password"]}
    project, elsewhere = tmp_path / "project", tmp_path / "worker-home"
    project.mkdir()
    elsewhere.mkdir()
    setup = subprocess.run(
        [str(BIN / "rahcp-prefect"), "setup", "--endpoint", hcp_credentials["endpoint"],
         "--username", hcp_credentials["username"], "--tenant", hcp_credentials["tenant"],
         "--tracker-sqlite", "tracker.db"],
        env=env, cwd=project, capture_output=True, text=True, timeout=300,
    )
    assert setup.returncode == 0, setup.stdout[-3000:] + setup.stderr[-3000:]
    files = make_tree(project / "source", 20)
    source = str(project / "source")
    log = tmp_path / "worker.log"

    def night(*params: str) -> subprocess.CompletedProcess[str]:
        return run_deployment(env, project, "bulk-upload/default", *params)

    with running_worker(env, "rahcp-process", elsewhere, log):
        hcp_emulator.reset_counts()
        first = night(f"source_dir={source}", f"bucket={hcp_bucket}", "prefix=nightly/")
        assert first.returncode == 0, first.stdout[-3000:] + log.read_text(errors="replace")[-5000:]
        sent_first = _data_puts(hcp_emulator)
        hcp_emulator.reset_counts()
        second = night(f"source_dir={source}", f"bucket={hcp_bucket}", "prefix=nightly/")
        assert second.returncode == 0, second.stdout[-3000:] + log.read_text(errors="replace")[-5000:]
        sent_second = _data_puts(hcp_emulator)
        counts_second = dict(hcp_emulator.request_counts)
        relative = night("source_dir=source", f"bucket={hcp_bucket}", "prefix=relative/")
    assert sent_first >= len(files) + MANIFEST
    assert sent_second <= MANIFEST, f"night 2 sent files again ({sent_second} PUTs): {counts_second}"
    assert (project / "tracker.db").is_file(), "the tracker lives in the project folder"
    assert not any(elsewhere.rglob("tracker.db")), "no tracker in the worker's folder"
    stored = hcp_emulator.stored(hcp_bucket, "nightly/")
    assert {f"nightly/{rel}" for rel in files} <= set(stored)

    assert relative.returncode != 0
    worker_text = log.read_text(errors="replace")
    assert "source_dir 'source' is a relative path: a deployment's run starts in the worker's" in worker_text
    assert hcp_emulator.stored(hcp_bucket, "relative/") == {}
