"""The SDK's error hierarchy: every failure the client raises is an ``HCPError``.

Messages never carry a password, a token or a presigned signature: callers build them
through ``rahcp_prefect.client.redaction`` before raising.
"""

from __future__ import annotations

from rahcp_prefect.errors import RahcpError


class HCPError(RahcpError):
    """Base class: an HCP API or data-plane failure with its HTTP status (0 when none), and the
    bucket and key it was about where the client knew them (``S3Ops`` fills them in)."""

    def __init__(
        self, message: str, status_code: int = 0, *, bucket: str | None = None, key: str | None = None
    ) -> None:
        super().__init__(message, bucket=bucket, key=key)
        self.message = message
        self.status_code = status_code

    def __str__(self) -> str:
        return self.with_context(f"{self.status_code} {self.message}" if self.status_code else self.message)


class AuthenticationError(HCPError):
    """401/403: bad credentials, a rejected token after one re-login, or no permission."""


class NotFoundError(HCPError):
    """404: the bucket, object, upload or namespace does not exist."""


class ConflictError(HCPError):
    """409: the resource already exists or is not empty."""


class RetentionError(HCPError):
    """403 on a delete or an overwrite: the object is under retention or on hold (or the user
    may not delete it). Not a login problem: the credentials worked."""


class OverwriteRefusedError(ConflictError):
    """409 on a copy or PUT onto an existing object: the namespace keeps no versions and its
    overwrite option is off (HCP's default), so an object is replaced only by delete + copy."""


class RetryableError(HCPError):
    """408/429/500/503/504 or a transport error that persisted after every retry."""


class UpstreamError(RetryableError):
    """502: HCP (or its S3 endpoint) is unreachable behind the API; not retried by the client."""


class PresignedTransferError(HCPError):
    """A PUT or GET on a presigned URL failed; the message names bucket/key, never the URL."""


class ObjectChangedError(HCPError):
    """The object is not the one expected: another size, or bytes that fail its checksum."""


class CertificateError(HCPError):
    """The server's TLS certificate failed verification (an unknown CA, an expired certificate,
    another host name). Not retried and not a login problem: the message names the host, the
    problem and the setting to use (``ca_bundle``)."""

    def __init__(self, message: str, *, host: str) -> None:
        super().__init__(message)
        self.host = host


class ChecksumMismatchError(HCPError):
    """Bytes whose digest is not the one expected: damaged on the way, or in storage."""


RETRYABLE_STATUSES = frozenset({408, 429, 500, 503, 504})
"""Control-plane statuses retried with backoff (spec: "Retry behavior")."""


def error_for_status(status_code: int, message: str) -> HCPError:
    """Map a final HTTP status to the matching error class (the message is already redacted)."""
    if status_code in (401, 403):
        return AuthenticationError(message, status_code)
    if status_code == 404:
        return NotFoundError(message, status_code)
    if status_code == 409:
        return ConflictError(message, status_code)
    if status_code == 502:
        return UpstreamError(message, status_code)
    if status_code in RETRYABLE_STATUSES:
        return RetryableError(message, status_code)
    return HCPError(message, status_code)
