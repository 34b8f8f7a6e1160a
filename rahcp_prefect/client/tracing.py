"""Optional OpenTelemetry spans: one per API request and one per upload/download/multipart.

When ``opentelemetry`` is not importable every span is a no-op. ``configure_tracing`` installs an
OTLP exporter (it needs ``opentelemetry-sdk`` and an OTLP exporter package).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

try:  # pragma: no cover - exercised by whichever environment runs the tests
    from opentelemetry import trace as _otel_trace
except ImportError:  # pragma: no cover
    _otel_trace = None  # type: ignore[assignment]

TRACER_NAME = "rahcp_prefect.client"

_provider: Any = None
"""A tracer provider set with ``set_tracer_provider``; None means the global one."""


class _NoopSpan:
    """Stands in for a span when OpenTelemetry is missing."""

    def set_attribute(self, key: str, value: Any) -> None:
        pass

    def record_exception(self, exception: BaseException) -> None:
        pass

    def is_recording(self) -> bool:
        return False


_NOOP = _NoopSpan()


def tracing_available() -> bool:
    """True when ``opentelemetry`` (the API) is importable."""
    return _otel_trace is not None


def set_tracer_provider(provider: Any) -> None:
    """Send this SDK's spans to ``provider`` instead of the global one (None restores global)."""
    global _provider
    _provider = provider


@contextmanager
def span(name: str, attributes: Mapping[str, Any] | None = None) -> Iterator[Any]:
    """A span named ``name`` with ``attributes`` (None values skipped); a no-op without OTel.

    Exceptions are recorded on the span and re-raised.
    """
    if _otel_trace is None:
        yield _NOOP
        return
    tracer = (_provider or _otel_trace.get_tracer_provider()).get_tracer(TRACER_NAME)
    clean = {key: value for key, value in (attributes or {}).items() if value is not None}
    with tracer.start_as_current_span(name, attributes=clean) as current:
        yield current


def set_error(current: Any, description: str) -> None:
    """Mark ``current`` (a span from ``span``) as failed with ``description`` (already redacted)."""
    if _otel_trace is None or not current.is_recording():
        return
    current.set_status(_otel_trace.Status(_otel_trace.StatusCode.ERROR, description))


def configure_tracing(
    service_name: str,
    endpoint: str,
    protocol: str = "http/protobuf",
    headers: dict[str, str] | None = None,
) -> Any:
    """Export this process's spans over OTLP to ``endpoint`` and return the tracer provider.

    ``protocol`` is ``"http/protobuf"`` (``endpoint`` is the collector base URL or its
    ``/v1/traces`` URL) or ``"grpc"``. Sets the global provider so spans of other libraries go
    to the same place.
    """
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise ImportError(
            "configure_tracing needs opentelemetry-sdk: pip install 'rahcp-prefect[otel]'"
        ) from exc

    if protocol == "http/protobuf":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as exc:
            raise ImportError(
                "OTLP over HTTP needs opentelemetry-exporter-otlp-proto-http: "
                "pip install opentelemetry-exporter-otlp-proto-http"
            ) from exc
        url = endpoint.rstrip("/")
        if not url.endswith("/v1/traces"):
            url += "/v1/traces"
        exporter = OTLPSpanExporter(endpoint=url, headers=headers)
    elif protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcSpanExporter,
            )
        except ImportError as exc:
            raise ImportError(
                "OTLP over gRPC needs opentelemetry-exporter-otlp-proto-grpc: "
                "pip install opentelemetry-exporter-otlp-proto-grpc (or use protocol='http/protobuf')"
            ) from exc
        exporter = GrpcSpanExporter(endpoint=endpoint, headers=headers)
    else:
        raise ValueError(f"protocol must be 'http/protobuf' or 'grpc', got {protocol!r}")

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    set_tracer_provider(provider)
    return provider
