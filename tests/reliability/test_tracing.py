"""Tracing: with an in-memory span exporter, the flows' spans nest as
flow run -> task run (Prefect) -> bulk job -> file -> API request (ours), carrying bucket,
key count, bytes and status; a failed file is an error span.

Prefect 3 creates flow and task run spans from the global tracer provider, which
OpenTelemetry lets a process set only once: the fixture resets that global around the test
(as OpenTelemetry's own test utilities do) so the test sees its spans whatever ran before.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from opentelemetry.util._once import Once

from rahcp_prefect.client import tracing
from rahcp_prefect.flows import bulk_download, bulk_upload
from rahcp_prefect.testing.prefect_fixtures import SavedBlocks

FILES = 10


def _reset_global_provider() -> None:
    trace._TRACER_PROVIDER_SET_ONCE = Once()  # type: ignore[attr-defined]
    trace._TRACER_PROVIDER = None  # type: ignore[attr-defined]


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    _reset_global_provider()
    trace.set_tracer_provider(provider)
    tracing.set_tracer_provider(None)  # the SDK follows the global provider
    yield memory
    _reset_global_provider()
    provider.shutdown()


def _ours(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    """Prefect's and this package's spans (the in-process emulator's FastAPI traces its own)."""
    scopes = ("prefect", tracing.TRACER_NAME)
    return [s for s in exporter.get_finished_spans() if s.instrumentation_scope.name in scopes]


def _children(spans: list[ReadableSpan], parent: ReadableSpan, name: str | None = None) -> list[ReadableSpan]:
    return [
        s for s in spans
        if s.parent is not None and s.parent.span_id == parent.context.span_id
        and (name is None or s.name == name or s.name.startswith(name))
    ]


def _run_span(spans: list[ReadableSpan], run_id: Any) -> ReadableSpan:
    return next(s for s in spans if s.attributes.get("prefect.run.id") == str(run_id))


async def test_spans_nest_from_flow_run_down_to_api_requests(
    exporter: InMemorySpanExporter, saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for index in range(FILES):
        (source / f"f{index}.txt").write_bytes(b"x" * (100 + index))
    total = sum(100 + index for index in range(FILES))

    state = await bulk_upload(
        source_dir=str(source), bucket=hcp_bucket, prefix="t/", return_state=True, **saved_blocks.params()
    )
    assert state.is_completed()
    spans = _ours(exporter)
    flow = _run_span(spans, state.state_details.flow_run_id)
    assert flow.attributes["prefect.run.type"] == "flow" and flow.status.status_code == StatusCode.OK
    assert {s.context.trace_id for s in spans} == {flow.context.trace_id}, "one trace per flow run"

    [batch] = _children(spans, flow, "hcp-upload-batch")
    assert batch.attributes["prefect.run.type"] == "task"
    [job] = _children(spans, batch, "bulk.upload")
    assert job.attributes["s3.bucket"] == hcp_bucket and job.attributes["s3.prefix"].startswith(".rahcp-staging/")
    assert (job.attributes["rahcp.files"], job.attributes["rahcp.files.ok"]) == (FILES, FILES)
    assert job.attributes["s3.bytes"] == total and job.attributes["rahcp.status"] == "ok"
    files = _children(spans, job, "bulk.upload.file")
    assert sorted(s.attributes["s3.key"].rsplit("/", 1)[1] for s in files) == sorted(f"f{i}.txt" for i in range(FILES))
    assert all(s.attributes["rahcp.status"] == "ok" and s.attributes["s3.bytes"] >= 100 for s in files)
    presign = [s for s in _children(spans, job, "HCP POST") if s.attributes["url.path"].endswith("/objects/presign")]
    assert presign and presign[0].attributes["http.status_code"] == 200
    [commit] = _children(spans, flow, "hcp-commit-staging")
    copies = [s for s in _children(spans, commit, "HCP POST") if s.attributes["url.path"].endswith("/copy")]
    assert len(copies) == FILES

    # a download where one key keeps failing: its file span and the job span say so
    exporter.clear()
    hcp_emulator.faults.add("data", method="GET", path=r"/t/f3\.txt$", status=500, count=None)
    state = await bulk_download(
        bucket=hcp_bucket, dest_dir=str(tmp_path / "dest"), prefix="t/", return_state=True, **saved_blocks.params()
    )
    assert state.is_failed()
    spans = _ours(exporter)
    flow = _run_span(spans, state.state_details.flow_run_id)
    assert flow.status.status_code == StatusCode.ERROR
    [batch] = _children(spans, flow, "hcp-download-batch")
    [job] = _children(spans, batch, "bulk.download")
    assert job.attributes["rahcp.status"] == "errors" and job.attributes["rahcp.files.errors"] == 1
    # the prefix holds the FILES files and the commit's two tag files (manifest-sha256.txt,
    # rahcp-mtimes.txt): all but f3.txt arrive
    assert job.attributes["rahcp.files"] == FILES + 2
    assert job.attributes["rahcp.files.ok"] == FILES + 1 and job.attributes["rahcp.retries"] == 2
    assert job.attributes["rahcp.api_retries"] == 0
    assert job.status.status_code == StatusCode.ERROR
    failed = [s for s in _children(spans, job, "bulk.download.file") if s.attributes["rahcp.status"] == "error"]
    assert [s.attributes["s3.key"] for s in failed] == ["t/f3.txt"]
    assert failed[0].status.status_code == StatusCode.ERROR and "500" in (failed[0].status.description or "")


async def test_no_provider_means_no_per_file_spans(
    hcp_client: Any, hcp_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a recording provider the engine hands its workers the plain handler."""
    from rahcp_prefect.bulk import BulkUploadConfig, bulk_upload as engine_upload
    from rahcp_prefect.bulk import tracing as bulk_tracing
    from rahcp_prefect.tracker import SqliteTracker

    _reset_global_provider()
    wrapped: list[bool] = []
    real_files = bulk_tracing.RunSpans.files

    def spy(self: Any, handle: Any, name: str, size_at: int) -> Any:
        result = real_files(self, handle, name, size_at)
        wrapped.append(result is not handle)
        return result

    monkeypatch.setattr(bulk_tracing.RunSpans, "files", spy)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a").write_bytes(b"a")
    with SqliteTracker(tmp_path / "t.db", job="j") as tracker:
        stats = await engine_upload(
            BulkUploadConfig(client=hcp_client, bucket=hcp_bucket, source_dir=tmp_path / "src", tracker=tracker)
        )
    assert stats.ok == 1 and wrapped == [False]
