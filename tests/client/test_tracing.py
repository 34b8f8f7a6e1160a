"""OpenTelemetry spans per API request and per transfer; configure_tracing; no-op without OTel."""

from __future__ import annotations

import importlib.util
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from rahcp_prefect.client import configure_tracing, tracing

MIB = 1024 * 1024


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracing.set_tracer_provider(provider)
    yield memory
    tracing.set_tracer_provider(None)
    provider.shutdown()


async def test_spans_for_requests_and_transfers(
    exporter: InMemorySpanExporter, make_client: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    client = await make_client(multipart_threshold=5 * MIB, multipart_chunk=5 * MIB)
    source = tmp_path / "big"
    source.write_bytes(os.urandom(6 * MIB))
    await client.s3.list_objects(hcp_bucket, prefix="x/")
    await client.s3.upload(hcp_bucket, "small", b"12345")
    await client.s3.upload(hcp_bucket, "big", source)
    await client.s3.download(hcp_bucket, "small", tmp_path / "small.out")

    spans = exporter.get_finished_spans()
    api = [s for s in spans if s.name.startswith("HCP ")]
    listing = next(s for s in api if s.attributes["url.path"] == f"/buckets/{hcp_bucket}/objects")
    assert listing.name == "HCP GET" and listing.attributes["http.method"] == "GET"
    assert listing.attributes["http.status_code"] == 200
    assert all("?" not in s.attributes["url.path"] for s in api)

    by_name = {s.name: s for s in spans if s.name.startswith("s3.")}
    upload = by_name["s3.upload"]
    assert dict(upload.attributes) == {"s3.bucket": hcp_bucket, "s3.key": "small", "s3.bytes": 5}
    multipart = by_name["s3.upload_multipart"]
    assert multipart.attributes["s3.bytes"] == 6 * MIB and multipart.attributes["s3.key"] == "big"
    download = by_name["s3.download"]
    assert download.attributes["s3.bytes"] == 5
    # the API requests of the multipart upload are children of its span
    children = [s for s in api if s.parent is not None and s.parent.span_id == multipart.context.span_id]
    assert len(children) == 3  # initiate, presign parts, complete


async def test_spans_record_failures(exporter: InMemorySpanExporter, hcp_client: Any, hcp_bucket: str) -> None:
    with pytest.raises(Exception):
        await hcp_client.s3.download_bytes(hcp_bucket, "missing")
    failed = next(s for s in exporter.get_finished_spans() if s.name == "s3.download")
    assert not failed.status.is_ok
    assert any(event.name == "exception" for event in failed.events)


def test_span_is_a_no_op_without_opentelemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "_otel_trace", None)
    with tracing.span("x", {"a": 1}) as current:
        current.set_attribute("b", 2)
    assert type(current).__name__ == "_NoopSpan"


def test_configure_tracing_exports_over_otlp_http() -> None:
    received: list[tuple[str, str]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers["Content-Type"]))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    provider = configure_tracing("rahcp-test", f"http://127.0.0.1:{server.server_port}")
    try:
        assert isinstance(provider, TracerProvider)
        assert provider.resource.attributes["service.name"] == "rahcp-test"
        with tracing.span("probe", {"k": "v"}) as current:
            assert current.get_span_context().is_valid
        assert provider.force_flush(5000)
    finally:
        tracing.set_tracer_provider(None)
        provider.shutdown()
        server.shutdown()
        server.server_close()
    assert received == [("/v1/traces", "application/x-protobuf")]


def test_configure_tracing_rejects_unknown_protocol() -> None:
    with pytest.raises(ValueError, match="protocol"):
        configure_tracing("x", "http://127.0.0.1:9", protocol="carrier-pigeon")


@pytest.mark.skipif(
    importlib.util.find_spec("opentelemetry.exporter.otlp.proto.grpc") is not None,
    reason="the gRPC exporter is installed here",
)
def test_configure_tracing_grpc_missing_says_what_to_install() -> None:
    with pytest.raises(ImportError, match="opentelemetry-exporter-otlp-proto-grpc"):
        configure_tracing("x", "http://127.0.0.1:4317", protocol="grpc")
