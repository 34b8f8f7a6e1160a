"""What the tracker accepts: keys, job names, statuses, digests, times and options, checked
the same way on both backends (so they stay interchangeable), and free text made storable."""

from __future__ import annotations

from typing import Any

from rahcp_prefect.defaults import MAX_KEY_BYTES
from rahcp_prefect.tracker.errors import InvalidKeyError, TrackerConfigError
from rahcp_prefect.tracker.protocol import TransferStatus

#: Longest key or job name the tracker stores, in UTF-8 bytes: S3's ``MAX_KEY_BYTES`` (1024)
#: with room to spare, so that a too-long key can still be recorded as a failed file; its own
#: bound is PostgreSQL's index entry (about 2.7 KB), which job + key must fit in.
MAX_TRACKED_TEXT_BYTES = 1200

_STATUS_VALUES = {s.value: s.value for s in TransferStatus} | {s: s.value for s in TransferStatus}


def check_key(key: str, what: str = "key") -> str:
    """Return ``key`` if every backend can store it, else raise ``InvalidKeyError``.

    Refused: non-strings, the empty string, NUL (PostgreSQL text cannot hold it, so SQLite
    refuses it too, keeping the backends interchangeable), lone surrogates (not UTF-8;
    they come from undecodable file names read with ``surrogateescape``) and more than
    ``MAX_TRACKED_TEXT_BYTES`` of UTF-8 (a PostgreSQL index entry holds about 2.7 KB).
    """
    if type(key) is not str:
        if not isinstance(key, str):
            raise InvalidKeyError(f"{what} must be a str, not {type(key).__name__}")
    if not key:
        raise InvalidKeyError(f"{what} must not be empty")
    if "\x00" in key:
        raise InvalidKeyError(f"{what} {key!r} contains NUL, which the tracker cannot store")
    if key.isascii():
        size = len(key)
    else:
        try:
            size = len(key.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise InvalidKeyError(
                f"{what} {key!r} is not valid UTF-8 text ({exc.reason}); "
                "decode file names before tracking them"
            ) from None
    if size > MAX_TRACKED_TEXT_BYTES:
        raise InvalidKeyError(
            f"{what} {key[:40]!r}... is {size} bytes of UTF-8; the tracker stores at most "
            f"{MAX_TRACKED_TEXT_BYTES} (S3 keys are at most {MAX_KEY_BYTES})"
        )
    return key


def clean_text(text: str | None) -> str | None:
    """An error message or etag made storable: NUL and lone surrogates escaped, never refused."""
    if text is None:
        return None
    text = str(text)
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def status_value(status: TransferStatus | str) -> str:
    """The stored spelling of ``status``; unknown statuses raise ``ValueError``."""
    try:
        return _STATUS_VALUES[status]
    except (KeyError, TypeError):
        raise ValueError(f"unknown transfer status {status!r}") from None


def check_positive(name: str, value: float) -> None:
    """Refuse a non-positive option (``limit``, ``lease_seconds``, ``flush_every``)."""
    if not value > 0:
        raise TrackerConfigError(f"{name} must be > 0, got {value!r}")



def check_digest(value: object, what: str) -> str:
    """A digest must be a hex str (or None, handled by the caller); anything else is refused."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a hex str or None, got {value!r}")
    return str(value)


def check_mtime(mtime_ns: int | None) -> int | None:
    """``mtime_ns`` as an int (or None); anything else is refused with the value named."""
    if mtime_ns is None:
        return None
    if isinstance(mtime_ns, bool) or not isinstance(mtime_ns, int):
        raise ValueError(f"mtime_ns must be an int of nanoseconds or None, got {mtime_ns!r}")
    return mtime_ns


def register_row(entry: tuple[Any, ...]) -> tuple[str, int, int | None]:
    """``(key, size, mtime_ns)`` from a ``(key, size)`` or ``(key, size, mtime_ns)`` entry, checked."""
    if len(entry) == 2:
        key, size = entry
        mtime = None
    else:
        key, size, mtime = entry
    return check_key(key), int(size), check_mtime(mtime)

