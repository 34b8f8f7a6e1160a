"""Secrets: a full upload, a failing upload that rolls back, and a download, with every logger
at DEBUG, leak no HCP password, bearer token, presigned signature or tracker password into
any log record, exception text, Prefect log (read back from the API) or artifact.

The tracker is PostgreSQL through a role with a password of its own (created here; the local
server may trust any password, so it is only a string that must not appear anywhere).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from pydantic import SecretStr

from rahcp_prefect.blocks import HCPTracker
from rahcp_prefect.client import HCPClient
from rahcp_prefect.flows import bulk_download, bulk_upload
from rahcp_prefect.testing.prefect_fixtures import SavedBlocks
from rahcp_prefect.tracker import create_tracker

from .helpers import flow_artifacts

MIB = 1024 * 1024
ROLE = "rahcp_secret"
SERVER_SIDE = ("rahcp_prefect.testing", "uvicorn", "botocore", "boto3", "urllib3", "moto",
               "werkzeug", "s3transfer", "fastapi", "starlette")
"""The emulator runs in this process: its own (server-side) loggers are not our output."""
FORBIDDEN = re.compile(r"(?i)X-Amz-(Signature|Credential|Security-Token)|Bearer\s+ey|\beyJ[\w-]{5,}\.")


@pytest.fixture
def secret_dsn(postgres_dsn: str) -> Iterator[str]:
    """A DSN for the role ``rahcp_secret`` with a fresh random password, allowed to use the tracker."""
    create_tracker(postgres_dsn, job="schema-probe").close()  # the schema exists before the role uses it
    password = f"Trk-{secrets.token_hex(10)}!@:/"
    params = conninfo_to_dict(postgres_dsn)
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        role = sql.Identifier(ROLE)
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(role, sql.Literal(password)))
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(params["dbname"]), role))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(role))
        conn.execute(sql.SQL("GRANT ALL ON ALL TABLES IN SCHEMA public TO {}").format(role))
        conn.execute(sql.SQL("GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {}").format(role))
    host, port, db = params.get("host", "127.0.0.1"), params.get("port", "5432"), params["dbname"]
    yield f"postgresql://{ROLE}:{quote(password, safe='')}@{host}:{port}/{db}"


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def every_logger_at_debug() -> Iterator[_Capture]:
    """Every logger at DEBUG, captured at the root and at each logger that does not propagate."""
    capture = _Capture()
    loggers = [logging.getLogger()] + [
        item for item in logging.Logger.manager.loggerDict.values() if isinstance(item, logging.Logger)
    ]
    levels = {logger: logger.level for logger in loggers}
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        if logger is logging.getLogger() or not logger.propagate:
            logger.addHandler(capture)
    try:
        yield capture
    finally:
        for logger, level in levels.items():
            logger.setLevel(level)
            logger.removeHandler(capture)


def _collect_secrets(monkeypatch: pytest.MonkeyPatch) -> dict[str, set[str]]:
    """Record every token the client gets and every presigned signature the API hands out."""
    found: dict[str, set[str]] = {"token": set(), "signature": set()}
    login, request_json = HCPClient.login, HCPClient.request_json

    async def recording_login(self: HCPClient) -> None:
        await login(self)
        found["token"].add(self.token or "")

    async def recording_request_json(self: HCPClient, *args: Any, **kwargs: Any) -> Any:
        answer = await request_json(self, *args, **kwargs)
        found["signature"].update(re.findall(r"X-Amz-Signature=([0-9a-f]{16,})", json.dumps(answer)))
        return answer

    monkeypatch.setattr(HCPClient, "login", recording_login)
    monkeypatch.setattr(HCPClient, "request_json", recording_request_json)
    return found


async def _prefect_texts(state: Any, *, tasks: bool = True) -> list[str]:
    """Logs, artifacts and run/task states of the flow run behind ``state``, as text
    (``tasks=False``: a run that failed before its first task run)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    await APILogHandler.aflush()
    run_id = state.state_details.flow_run_id
    async with get_client() as client:
        logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
        task_runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
        run = await client.read_flow_run(run_id)
    artifacts = await flow_artifacts(run_id)
    assert logs and artifacts and (task_runs or not tasks), "the run left logs, artifacts and task runs to check"
    texts = [log.message for log in logs]
    texts += [json.dumps(a.data, default=str) + (a.description or "") for a in artifacts]
    texts += [json.dumps(run.parameters, default=str), run.state.message or ""]
    texts += [t.state.message or "" for t in task_runs if t.state]
    return texts


async def test_upload_failure_rollback_and_download_leak_no_secret(
    saved_blocks: SavedBlocks, secret_dsn: str, hcp_credentials: dict[str, Any], hcp_emulator: Any,
    hcp_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    await HCPTracker(postgres_dsn=SecretStr(secret_dsn)).save(saved_blocks.tracker, overwrite=True)
    tracker_password = unquote(secret_dsn.split(":")[2].split("@")[0])
    found = _collect_secrets(monkeypatch)
    source = tmp_path / "src"
    source.mkdir()
    for index in range(30):
        (source / f"doc {index}?.txt").write_bytes(b"%d" % index * 100)
    (source / "big.bin").write_bytes(b"\1" * (9 * MIB))  # multipart: presigned part URLs too
    params = {"source_dir": str(source), "bucket": hcp_bucket, **saved_blocks.params()}
    texts: list[str] = []
    errors: list[BaseException] = []

    with every_logger_at_debug() as capture:
        # 1. a full upload, with a re-login and retries on the way
        hcp_emulator.faults.add("api", path=r"/presign$", status=401, count=1)
        hcp_emulator.faults.add("data", method="PUT", status=503, count=3)
        ok = await bulk_upload(prefix="good/", return_state=True, **params)
        assert ok.is_completed(), ok.message
        texts += await _prefect_texts(ok)
        # 2. an upload that fails (S3 refuses some files even with fresh URLs) and rolls back
        hcp_emulator.faults.add("data", method="PUT", path=r"doc 1\d", status=403, count=None)
        hcp_emulator.faults.add("api", method="POST", path=r"/presign$", drop=True, count=2)
        failed = await bulk_upload(prefix="bad/", return_state=True, **params)
        assert failed.is_failed()
        with pytest.raises(Exception) as info:
            await failed.result()
        errors.append(info.value)
        texts += await _prefect_texts(failed)
        hcp_emulator.faults.clear()
        # 3. a download of what was committed
        down = await bulk_download(bucket=hcp_bucket, dest_dir=str(tmp_path / "dest"), prefix="good/",
                                   return_state=True, **saved_blocks.params())
        assert down.is_completed(), down.message
        texts += await _prefect_texts(down)

    records = [r for r in capture.records if not r.name.startswith(SERVER_SIDE)]
    assert any(r.levelno == logging.DEBUG and r.name.startswith("rahcp_prefect.client") for r in records)
    assert any("rolled back" in r.getMessage() for r in records), "the rollback ran and was logged"
    assert len(found["token"]) >= 2 and len(found["signature"]) >= 30, "secrets were really in play"
    for record in records:
        texts.append(record.getMessage())
        if record.exc_info:
            texts.append("".join(traceback.format_exception(*record.exc_info)))
    for error in errors:
        texts += [str(error), repr(error), "".join(traceback.format_exception(error))]

    secrets_in_play = {
        "HCP password": {hcp_credentials["password"]},
        "tracker password": {tracker_password, quote(tracker_password, safe="")},
        "token": found["token"],
        "presigned signature": found["signature"],
    }
    for text in texts:
        for kind, values in secrets_in_play.items():
            for value in values:
                assert value not in text, f"{kind} leaked: {text[:300]}"
        assert not FORBIDDEN.search(text), text[:300]
