"""The tracker's error classes.

``TrackerConfigError`` and ``TrackerConnectionError`` are ``ValueError``s: a bad target is a
configuration mistake, and flows reject it before any transfer starts. No message ever
carries a DSN's password (see ``rahcp_prefect.tracker.dsn``).
"""

from __future__ import annotations

from rahcp_prefect.errors import RahcpError


class TrackerError(RahcpError):
    """Base class of every error the tracker raises itself."""


class TrackerConfigError(TrackerError, ValueError):
    """The target or an option is invalid (unknown scheme, bad option value)."""


class TrackerConnectionError(TrackerConfigError):
    """The database cannot be reached or refused the connection (host, port, database, auth)."""


class InvalidKeyError(TrackerError, ValueError):
    """A key or job name the database cannot store: empty, NUL, or not encodable as UTF-8."""


class TrackerSchemaError(TrackerError):
    """The database schema is newer than this release understands, or cannot be migrated."""


class TrackerClosedError(TrackerError):
    """The tracker was used after ``close()`` or from another process than its creator."""
