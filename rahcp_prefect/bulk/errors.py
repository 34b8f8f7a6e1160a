"""Per-file failures the engine raises itself (recorded against the file, never fatal), and
the errors that stop a whole transfer instead."""

from __future__ import annotations

from rahcp_prefect.client.errors import CertificateError
from rahcp_prefect.errors import RahcpError

RUN_STOPPING_ERRORS: tuple[type[BaseException], ...] = (CertificateError,)
"""Errors no other file can get past: the S3 endpoint's TLS certificate is not trusted, so every
file would fail the same way. The first one a worker meets is raised as it is and stops the whole
transfer (the pipeline cancels the other workers), instead of being recorded against each file."""


class BulkFileError(RahcpError):
    """Base class of the engine's own per-file errors."""


class FileChangedError(BulkFileError):
    """The local file changed (size or mtime) or vanished between the scan and the end of its
    upload. Not a failure: the engine defers the file (``Recorder.deferred``), the run commits
    the rest, and the next run sends it."""

    def __init__(self, path: str, expected: int, actual: int | None, *, stored: bool = False) -> None:
        if actual is None:
            now = "is gone"
        elif actual == expected:
            now = "same size, rewritten: its modification time moved"
        else:
            now = f"is now {actual} bytes"
        super().__init__(
            f"{path} changed since it was scanned ({expected} bytes, {now}); "
            "not uploaded as done, it will be retried on the next run"
        )
        self.path = path
        self.expected = expected
        self.actual = actual
        self.stored = stored  # seen after its bytes were stored: the stored copy is not the file scanned

    @property
    def vanished(self) -> bool:
        """The file is gone (deleted or renamed), not just changed."""
        return self.actual is None


class VerificationError(BulkFileError):
    """``verify_upload``/``verify_download`` found a size other than the expected one."""
