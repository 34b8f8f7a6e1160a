"""The setting blocks: HCP credentials, transfer settings and the transfer tracker (Prefect
registers them, with ``HCPBucket``, through ``rahcp_prefect.blocks``).

Blocks hold what a deployment should not hard-code: where HCP is and who we are
(``HCPCredentials``), how hard to push the wire (``HCPTransferSettings``), and where the
transfer state lives (``HCPTracker``). Secrets are ``SecretStr`` and never leave the block
except into the SDK, which redacts them from every log line and error.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator

from rahcp_prefect import defaults
from rahcp_prefect.bulk.config import engine_options
from rahcp_prefect.bulk.settings import EngineSettings
from rahcp_prefect.bulk.validation import InvalidInputError, check_overrides, describe_errors
from rahcp_prefect.client.config import ConnectionSettings, WireSettings
from rahcp_prefect.job.settings import CommitSettings
from rahcp_prefect.paths import absolute_path

if TYPE_CHECKING:
    from rahcp_prefect.client import HCPClient
    from rahcp_prefect.tracker.protocol import TrackerProtocol

_DOCS_URL = "https://pypi.org/project/rahcp-prefect/"
#: The blocks' logo in the Prefect UI: ``rahcp_prefect/assets/logo.png`` (256 px square, drawn by
#: ``scripts/make_logo.py``) as the repository serves it.
LOGO_URL = "https://raw.githubusercontent.com/rahcp/rahcp-prefect/main/rahcp_prefect/assets/logo.png"
LOGO_FILE = "assets/logo.png"


class _KnownFields:
    """Making a block with a field it does not have raises ``ValueError`` naming it: Prefect's
    blocks accept unknown fields and drop them, so a misspelt setting (or one this version does
    not have, e.g. a block saved by a newer version loaded on an older worker) would be silently
    ignored."""

    def __init__(self, **data: Any) -> None:
        known = set(type(self).model_fields)  # type: ignore[attr-defined]
        unknown = sorted(set(data) - known - {"block_type_slug"})  # Prefect's, in every dump
        if unknown:
            raise ValueError(
                f"{type(self).__name__} has no setting {', '.join(map(repr, unknown))}; "
                f"its settings: {', '.join(sorted(known))}"
            )
        super().__init__(**data)


class HCPCredentials(_KnownFields, Block, ConnectionSettings):
    """Where the HCP API is and how to log in to it (the settings are ``ConnectionSettings``,
    declared once in ``rahcp_prefect.client.config``).

    Example:
        Load stored credentials and open a client:
        ```python
        from rahcp_prefect.blocks import HCPCredentials

        credentials = HCPCredentials.load("BLOCK_NAME")
        async with credentials.get_client() as client:
            print(await client.s3.list_buckets())
        ```
    """

    _block_type_name = "HCP Credentials"
    _documentation_url = _DOCS_URL  # type: ignore[assignment]
    _logo_url = LOGO_URL  # type: ignore[assignment]

    username: str = Field(title="Username", description="HCP user name.")
    password: SecretStr = Field(title="Password", description="HCP password, stored as a secret.")

    def get_client(self, settings: HCPTransferSettings | None = None) -> HCPClient:
        """A new, not yet opened ``HCPClient``; use it as ``async with``. The one way the tasks,
        the flows and ``HCPBucket`` get a client (a flow run opens one and lends it to its tasks)."""
        from rahcp_prefect.client import HCPClient

        values = self.model_dump(include=set(ConnectionSettings.model_fields))
        if settings is not None:
            values.update(settings.model_dump(include=set(WireSettings.model_fields)))
        return HCPClient(username=self.username, password=self.password.get_secret_value(), **values)


class HCPTransferSettings(_KnownFields, Block, CommitSettings, WireSettings, EngineSettings):
    """How bulk transfers use the wire: concurrency, batching, multipart and checks. The
    settings are declared once each, in ``EngineSettings`` (the transfer engine),
    ``WireSettings`` (the client) and ``CommitSettings`` (the job); every one of them can be
    overridden for a run (``settings_overrides``).

    Example:
        Load settings and override one field for a run:
        ```python
        from rahcp_prefect.blocks import HCPTransferSettings

        settings = HCPTransferSettings.load("BLOCK_NAME")
        faster = settings.with_overrides({"workers": 32})
        ```
    """

    _block_type_name = "HCP Transfer Settings"
    _documentation_url = _DOCS_URL  # type: ignore[assignment]
    _logo_url = LOGO_URL  # type: ignore[assignment]

    def with_overrides(self, overrides: dict[str, Any] | None) -> HCPTransferSettings:
        """A copy with ``overrides`` applied and validated: an unknown name, a value of the wrong
        type or out of range raises ``InvalidInputError`` naming the setting and the value."""
        overrides = check_overrides(overrides, _overridable(type(self)))
        if not overrides:
            return self
        try:
            return type(self).model_validate({**self.model_dump(), **overrides})
        except ValidationError as exc:
            raise InvalidInputError(describe_errors(exc.errors(), "settings_overrides")) from None

    def engine_options(self, direction: str) -> dict[str, Any]:
        """The bulk config fields these settings decide, for ``upload`` or ``download``."""
        return engine_options(self, direction)


def _overridable(settings: type[HCPTransferSettings]) -> dict[str, Any]:
    """The settings a run may override: the block's own fields, not Prefect's bookkeeping."""
    return {name: info for name, info in settings.model_fields.items() if name != "block_type_slug"}


class HCPTracker(_KnownFields, Block):
    """Where transfer state lives: a SQLite file (one machine) or PostgreSQL (shared).

    Use PostgreSQL when several flow runs, possibly on several workers, share one job.

    Example:
        Open the tracker of one job:
        ```python
        from rahcp_prefect.blocks import HCPTracker

        tracker_block = HCPTracker.load("BLOCK_NAME")
        tracker = tracker_block.get_tracker("bulk-upload:my-bucket/scans/")
        print(tracker.summary())
        tracker.close()
        ```
    """

    _block_type_name = "HCP Tracker"
    _documentation_url = _DOCS_URL  # type: ignore[assignment]
    _logo_url = LOGO_URL  # type: ignore[assignment]

    sqlite_path: str | None = Field(
        default=None,
        title="SQLite path",
        description=(
            "Path of the SQLite tracker file, used when no PostgreSQL DSN is set; a relative path "
            "is made absolute against the folder where the block is saved."
        ),
    )
    postgres_dsn: SecretStr | None = Field(
        default=None,
        title="PostgreSQL DSN",
        description="postgresql:// DSN of a shared tracker database, stored as a secret.",
    )
    lease_seconds: float = Field(
        default=120.0,
        gt=0,
        title="Lease seconds",
        description="How long a run's claim on a batch of keys lasts unless renewed.",
    )
    tracker_wait: float = Field(
        default=defaults.TRACKER_WAIT,
        gt=0,
        le=86400,
        title="Tracker wait (seconds)",
        description=(
            "How long a run waits for an unreachable PostgreSQL tracker (a restart, a failover) "
            "before it fails."
        ),
    )

    @field_validator("sqlite_path")
    @classmethod
    def _sqlite_path_absolute(cls, value: str | None) -> str | None:
        """Made absolute where the block is made (saved): a worker runs elsewhere."""
        return absolute_path(value)

    @model_validator(mode="after")
    def _one_target(self) -> HCPTracker:
        if self.sqlite_path and self.postgres_dsn:
            raise ValueError("set either sqlite_path or postgres_dsn, not both")
        return self

    @property
    def is_shared(self) -> bool:
        """True when the tracker is PostgreSQL, so parallel runs can share a job."""
        return self.postgres_dsn is not None

    def target(self) -> str:
        """The tracker target given to ``create_tracker`` (contains the DSN's secret)."""
        if self.postgres_dsn is not None:
            return self.postgres_dsn.get_secret_value()
        path = Path(self.sqlite_path or "~/.rahcp/tracker.db").expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        return str(path)

    def get_tracker(self, job: str) -> TrackerProtocol:
        """Open the tracker of ``job``; a bad target fails here, before any transfer."""
        from rahcp_prefect.tracker import create_tracker

        options = {"wait": self.tracker_wait} if self.is_shared else {}
        return create_tracker(self.target(), job=job, **options)

