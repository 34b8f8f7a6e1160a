"""Client configuration in one place: the validated settings and the ``HCP_*`` environment.

``ClientConfig`` holds every parameter of the SDK spec's Configuration table (plus the size of
the data-plane connection pool); ``TransferSettings`` is the subset the bulk engine reads.
Environment variables are read only here, in ``ClientConfig.from_env``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from rahcp_prefect import defaults
from rahcp_prefect.defaults import GIB, MIB

from .sizes import ByteSize, SizeError, parse_size

MIN_PART_SIZE = 5 * MIB
"""S3's smallest part (all parts but the last)."""
MAX_PART_SIZE = 5 * 1024 * MIB
"""S3's largest part."""
MAX_PARTS = 10_000
"""S3's largest number of parts in one multipart upload."""

DEFAULT_ENDPOINT = defaults.ENDPOINT
COMPLETE_TIMEOUT_FLOOR = 120.0
"""The least a CompleteMultipartUpload waits, whatever the object's size (seconds)."""


class TransferSettings(BaseModel):
    """Settings the bulk engine needs for data transfers (read from ``client.transfer_settings``)."""

    model_config = ConfigDict(frozen=True)

    verify_ssl: bool = Field(True, title="Verify SSL", description="Verify TLS certificates.")
    timeout: float = Field(defaults.TIMEOUT, title="Timeout", description="Connect/read timeout in seconds.")
    multipart_threshold: ByteSize = Field(
        defaults.MULTIPART_THRESHOLD, title="Multipart threshold (bytes)", description="Files this size or larger go multipart."
    )
    multipart_chunk: ByteSize = Field(defaults.MULTIPART_CHUNK, title="Multipart chunk (bytes)", description="Bytes per part.")
    multipart_concurrency: int = Field(
        defaults.MULTIPART_CONCURRENCY, title="Multipart concurrency", description="Parts of one file in flight at once."
    )


class ClientConfig(BaseModel):
    """Every setting of an ``HCPClient``, validated; bad values raise a clear ``ValueError``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint: str = Field(DEFAULT_ENDPOINT, title="Endpoint", description="HCP API base URL.")
    username: str = Field("", title="Username", description="HCP username.")
    password: SecretStr = Field(SecretStr(""), title="Password", description="HCP password.")
    tenant: str | None = Field(None, title="Tenant", description="Tenant; None for system level.")
    timeout: float = Field(defaults.TIMEOUT, gt=0, title="Timeout", description="Request timeout in seconds.")
    max_retries: int = Field(defaults.MAX_RETRIES, ge=0, le=100, title="Max retries", description="Retries of transient failures.")
    retry_base_delay: float = Field(
        defaults.RETRY_BASE_DELAY, ge=0, le=60, title="Retry base delay", description="Backoff base: base * 2**attempt seconds."
    )
    multipart_threshold: ByteSize = Field(
        defaults.MULTIPART_THRESHOLD,
        ge=1,
        title="Multipart threshold (bytes)",
        description='Files this size or larger go multipart: bytes, or a size such as "100 MiB".',
    )
    multipart_chunk: ByteSize = Field(
        defaults.MULTIPART_CHUNK,
        title="Multipart chunk (bytes)",
        description='Bytes per multipart part (5 MiB to 5 GiB): bytes, or a size such as "64 MiB".',
    )
    multipart_concurrency: int = Field(
        defaults.MULTIPART_CONCURRENCY, ge=1, le=256, title="Multipart concurrency", description="Parallel part uploads."
    )
    complete_timeout_per_gib: float = Field(
        defaults.COMPLETE_TIMEOUT_PER_GIB,
        ge=0,
        le=3600,
        title="Complete timeout per GiB",
        description="CompleteMultipartUpload waits max(timeout, 120 s) plus this many seconds per "
        "GiB of the object (the store reassembles the parts before it answers).",
    )
    verify_ssl: bool = Field(True, title="Verify SSL", description="Verify TLS certificates.")
    ca_bundle: str | None = Field(
        None,
        title="CA bundle",
        description="PEM file of the CA certificate(s) that signed the archive's certificates, trusted "
        "in addition to the system's (both the API and the presigned S3 URLs).",
    )
    max_connections: int = Field(
        defaults.MAX_CONNECTIONS, ge=1, title="Max connections", description="Size of the data-plane connection pool."
    )
    retry_deadline: float = Field(
        defaults.RETRY_DEADLINE,
        ge=0,
        le=86400,
        title="Retry deadline",
        description="Seconds a request keeps being retried (with backoff) while the store throttles "
        "it (429, 503, SlowDown); other failures get max_retries retries.",
    )
    max_bandwidth: ByteSize = Field(
        defaults.MAX_BANDWIDTH,
        title="Max bandwidth (bytes/s)",
        description='Bytes per second all transfers move together, both directions, e.g. "100MB"; 0: no cap.',
    )

    @field_validator("endpoint")
    @classmethod
    def _check_endpoint(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("multipart_chunk")
    @classmethod
    def _check_chunk(cls, value: int) -> int:
        if not MIN_PART_SIZE <= value <= MAX_PART_SIZE:
            raise ValueError(
                f"must be between 5 MiB ({MIN_PART_SIZE} bytes) and 5 GiB ({MAX_PART_SIZE} bytes), "
                f"got {value}"
            )
        return value

    @field_validator("ca_bundle")
    @classmethod
    def _absolute_ca_bundle(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return str(Path(value.strip()).expanduser().absolute())

    @field_validator("tenant")
    @classmethod
    def _blank_tenant_is_none(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return value.strip() or None

    @classmethod
    def build(cls, **values: Any) -> ClientConfig:
        """Validate ``values``; errors become one ``ValueError`` naming each field, never a value."""
        try:
            return cls(**values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or 'config'}: {error['msg']}"
                for error in exc.errors(include_input=False, include_url=False)
            )
            raise ValueError(f"Invalid HCP client configuration: {problems}") from None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ClientConfig:
        """Read the ``HCP_*`` variables (unset or empty ones keep the default); ``overrides`` win."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field, (variable, parse) in ENV_VARIABLES.items():
            raw = env.get(variable, "")
            if not raw.strip():
                continue
            values[field] = parse(variable, raw)
        values.update(overrides)
        return cls.build(**values)

    def complete_timeout(self, size: int) -> float:
        """Seconds to wait for CompleteMultipartUpload of a ``size``-byte object.

        ``max(timeout, 120) + complete_timeout_per_gib * size / GiB``: 2 minutes plus 2 minutes
        per GiB by default (moto took 87 s for 1 GiB on a loaded machine; 50 GB gets 1 h 42 min).
        A store that answers sooner costs nothing; one slower than this is retried, and the retry
        recognises an upload the first attempt already completed.
        """
        return max(self.timeout, COMPLETE_TIMEOUT_FLOOR) + self.complete_timeout_per_gib * size / GIB

    def transfer_settings(self) -> TransferSettings:
        """The data-transfer subset, for the bulk engine."""
        return TransferSettings(
            verify_ssl=self.verify_ssl,
            timeout=self.timeout,
            multipart_threshold=self.multipart_threshold,
            multipart_chunk=self.multipart_chunk,
            multipart_concurrency=self.multipart_concurrency,
        )


def _text(variable: str, raw: str) -> str:
    return raw


def _float(variable: str, raw: str) -> float:
    try:
        return float(raw.strip())
    except ValueError:
        raise ValueError(f"{variable} must be a number, got {raw.strip()[:40]!r}") from None


def _int(variable: str, raw: str) -> int:
    try:
        return int(raw.strip().replace("_", ""))
    except ValueError:
        raise ValueError(f"{variable} must be an integer, got {raw.strip()[:40]!r}") from None


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _bool(variable: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"{variable} must be true or false, got {raw.strip()[:40]!r}")


def _size(variable: str, raw: str) -> int:
    try:
        return parse_size(raw, variable)
    except SizeError as exc:
        raise ValueError(str(exc)) from None


def _secret(variable: str, raw: str) -> SecretStr:
    return SecretStr(raw)


ENV_VARIABLES = {
    "endpoint": ("HCP_ENDPOINT", _text),
    "username": ("HCP_USERNAME", _text),
    "password": ("HCP_PASSWORD", _secret),
    "tenant": ("HCP_TENANT", _text),
    "timeout": ("HCP_TIMEOUT", _float),
    "max_retries": ("HCP_MAX_RETRIES", _int),
    "retry_base_delay": ("HCP_RETRY_BASE_DELAY", _float),
    "multipart_threshold": ("HCP_MULTIPART_THRESHOLD", _size),
    "multipart_chunk": ("HCP_MULTIPART_CHUNK", _size),
    "multipart_concurrency": ("HCP_MULTIPART_CONCURRENCY", _int),
    "complete_timeout_per_gib": ("HCP_COMPLETE_TIMEOUT_PER_GIB", _float),
    "verify_ssl": ("HCP_VERIFY_SSL", _bool),
    "ca_bundle": ("HCP_CA_BUNDLE", _text),
    "max_connections": ("HCP_MAX_CONNECTIONS", _int),
    "retry_deadline": ("HCP_RETRY_DEADLINE", _float),
    "max_bandwidth": ("HCP_MAX_BANDWIDTH", _size),
}
"""Field name -> (environment variable, parser that names the variable on bad input)."""
