"""Client configuration in one place: the validated settings and the ``HCP_*`` environment.

Each client setting is declared once, in ``ConnectionSettings`` (where HCP is, how requests reach
it: the ``HCPCredentials`` block) or ``WireSettings`` (how hard the client pushes the wire: the
``HCPTransferSettings`` block); ``ClientConfig`` is both plus who logs in, and every field is read
from ``HCP_<NAME>`` by ``ClientConfig.from_env``: adding a setting is one field in one model.
``TransferSettings`` is the subset the bulk engine reads. Environment variables are read only
here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic.fields import FieldInfo

from rahcp_prefect import defaults
from rahcp_prefect.defaults import GIB, MIB

from rahcp_prefect.paths import absolute_path

from .sizes import FormSize, SizeError, check_minimum_size, parse_size, size_field

MIN_PART_SIZE = 5 * MIB
"""S3's smallest part (all parts but the last)."""
MAX_PART_SIZE = 5 * 1024 * MIB
"""S3's largest part."""
MAX_PARTS = 10_000
"""S3's largest number of parts in one multipart upload."""

DEFAULT_ENDPOINT = defaults.ENDPOINT
COMPLETE_TIMEOUT_FLOOR = 120.0
"""The least a CompleteMultipartUpload waits, whatever the object's size (seconds)."""


class ConnectionSettings(BaseModel):
    """Where HCP is and how each request reaches it: each setting declared once, here, with its
    default, bound and description; the ``HCPCredentials`` block and ``ClientConfig`` are these."""

    endpoint: str = Field(
        default=DEFAULT_ENDPOINT, title="Endpoint", description="Base URL of the HCP backend API, including the /api/v1 prefix."
    )
    tenant: str | None = Field(
        default=None, title="Tenant", description="HCP tenant to work in; leave empty for system-level access."
    )
    verify_ssl: bool = Field(
        default=True, title="Verify SSL", description="Verify TLS certificates of the API and of the S3 data endpoints."
    )
    ca_bundle: str | None = Field(
        default=None,
        title="CA bundle",
        description=(
            "Path of a PEM file with the CA certificate(s) of the archive (on the machine the flow runs "
            "on), trusted in addition to the system's for the API and the S3 data endpoints; a relative "
            "path is made absolute where it is given."
        ),
    )
    timeout: float = Field(default=defaults.TIMEOUT, gt=0, title="Timeout (seconds)", description="Per-request timeout in seconds.")
    max_retries: int = Field(
        default=defaults.MAX_RETRIES,
        ge=0,
        le=100,
        title="Max retries",
        description="Retries for transient failures (408, 429, 5xx, dropped connections).",
    )
    retry_base_delay: float = Field(
        default=defaults.RETRY_BASE_DELAY,
        ge=0,
        le=60,
        title="Retry base delay (seconds)",
        description="Base of the exponential backoff between retries: base * 2**attempt seconds.",
    )

    @field_validator("endpoint")
    @classmethod
    def _check_endpoint(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("tenant")
    @classmethod
    def _blank_tenant_is_none(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return value.strip() or None

    @field_validator("ca_bundle")
    @classmethod
    def _absolute_ca_bundle(cls, value: str | None) -> str | None:
        return absolute_path(value)


class WireSettings(BaseModel):
    """How hard one client pushes the wire: multipart, connections, throttling, bandwidth. Each
    declared once, here; the ``HCPTransferSettings`` block and ``ClientConfig`` are these."""

    multipart_threshold: FormSize = size_field(
        defaults.MULTIPART_THRESHOLD,
        minimum=1,
        title="Multipart threshold",
        description="Uploads of this size or larger use multipart",
    )
    multipart_chunk: FormSize = size_field(
        defaults.MULTIPART_CHUNK,
        minimum=MIN_PART_SIZE,
        title="Multipart chunk",
        description="Part size of multipart uploads, at most 5 GiB (raised automatically above 10,000 parts)",
    )
    multipart_concurrency: int = Field(
        default=defaults.MULTIPART_CONCURRENCY, ge=1, le=256, title="Multipart concurrency", description="Parts in flight per file."
    )
    complete_timeout_per_gib: float = Field(
        default=defaults.COMPLETE_TIMEOUT_PER_GIB,
        ge=0,
        le=3600,
        title="Complete timeout per GiB (seconds)",
        description="CompleteMultipartUpload waits max(timeout, 120 s) plus this many seconds per "
        "GiB of the object (the store reassembles the parts before it answers).",
    )
    max_connections: int = Field(
        default=defaults.MAX_CONNECTIONS,
        ge=1,
        le=10_000,
        title="Max connections",
        description="Size of the data-plane connection pool (connections to S3 at once).",
    )
    retry_deadline: float = Field(
        default=defaults.RETRY_DEADLINE,
        ge=0,
        le=86400,
        title="Retry deadline (seconds)",
        description=(
            "How long a request keeps being retried, with backoff, while HCP throttles it "
            "(429, 503 SlowDown); meanwhile fewer files are sent at once. Other failures are "
            "retried max_retries times."
        ),
    )
    max_bandwidth: FormSize = size_field(
        defaults.MAX_BANDWIDTH,
        title="Max bandwidth (per second)",
        description="Bytes per second a client moves at most, both directions together (0: no cap)",
    )

    @field_validator("multipart_threshold", "multipart_chunk")
    @classmethod
    def _size_at_least_its_minimum(cls, value: int, info: ValidationInfo) -> int:
        return check_minimum_size(cls, str(info.field_name), value)

    @field_validator("multipart_chunk")
    @classmethod
    def _chunk_at_most_a_part(cls, value: int) -> int:
        if value > MAX_PART_SIZE:
            raise ValueError(f"must be at most 5 GiB ({MAX_PART_SIZE} bytes), got {value}")
        return value


class ClientConfig(ConnectionSettings, WireSettings):
    """Every setting of an ``HCPClient``, validated; bad values raise a clear ``ValueError``.

    The settings are ``ConnectionSettings`` and ``WireSettings`` (declared there once); this adds
    who logs in."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    username: str = Field(default="", title="Username", description="HCP username.")
    password: SecretStr = Field(default=SecretStr(""), title="Password", description="HCP password.")

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
        return TransferSettings(**self.model_dump(include=set(TransferSettings.model_fields)))


_DECLARED: Mapping[str, Any] = ClientConfig.model_fields
"""Each client setting as ``ConnectionSettings``/``WireSettings`` declare it (default, bound, description)."""


class TransferSettings(BaseModel):
    """The settings the bulk engine reads for data transfers (``client.transfer_settings``): a
    subset of ``ClientConfig``, each field the one ``ConnectionSettings``/``WireSettings``
    declare (the same default, bound and description), never a second declaration."""

    model_config = ConfigDict(frozen=True)

    verify_ssl: bool = _DECLARED["verify_ssl"]
    timeout: float = _DECLARED["timeout"]
    multipart_threshold: int = _DECLARED["multipart_threshold"]
    multipart_chunk: int = _DECLARED["multipart_chunk"]
    multipart_concurrency: int = _DECLARED["multipart_concurrency"]


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


def _parser(info: FieldInfo) -> Callable[[str, str], Any]:
    """The parser of a field's environment variable, by the field's type."""
    extra = info.json_schema_extra
    if isinstance(extra, dict) and "minimum_bytes" in extra:  # a size_field
        return _size
    return {bool: _bool, int: _int, float: _float, SecretStr: _secret}.get(info.annotation, _text)  # type: ignore[arg-type]


ENV_VARIABLES: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    name: (f"HCP_{name.upper()}", _parser(info)) for name, info in ClientConfig.model_fields.items()
}
"""Field name -> (environment variable ``HCP_<NAME>``, parser that names the variable on bad input)."""
