"""Per-file failures the engine raises itself (recorded against the file, never fatal)."""

from __future__ import annotations


class BulkFileError(Exception):
    """Base class of the engine's own per-file errors."""


class FileChangedError(BulkFileError):
    """The local file's size changed between the scan and the upload; the next run retries it."""

    def __init__(self, path: str, expected: int, actual: int | None) -> None:
        now = "is gone" if actual is None else f"is now {actual} bytes"
        super().__init__(
            f"{path} changed since it was scanned ({expected} bytes, {now}); "
            "not uploaded as done, it will be retried on the next run"
        )
        self.path = path
        self.expected = expected
        self.actual = actual


class VerificationError(BulkFileError):
    """``verify_upload``/``verify_download`` found a size other than the expected one."""
