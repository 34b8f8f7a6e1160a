"""Counters of one bulk run, and the recorder that updates them, the tracker and the callbacks.

The recorder sits on the hot path (called once per file), so it does only integer additions,
one buffered ``tracker.mark`` and one clock read; progress callbacks are throttled to
``progress_interval`` and a failing callback is logged, never allowed to stop the transfer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any
from time import monotonic

from rahcp_prefect.tracker.protocol import TrackerProtocol, TransferStatus

from .config import ErrorFn, ProgressFn

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
#: Deferred files named in a run's stats (all are counted).
DEFERRED_NAMED = 100
_DONE = TransferStatus.done
_ERROR = TransferStatus.error


@dataclass
class TransferStats:
    """What a bulk run did. ``bytes`` counts bytes actually transferred (not skipped files)."""

    ok: int = 0
    """Files transferred."""
    skipped: int = 0
    """Files left alone because they were already done (tracker, remote listing or local disk)."""
    errors: int = 0
    """Files that failed (each one also went to ``on_error`` and the tracker)."""
    bytes: int = 0
    elapsed: float = 0.0
    """Seconds since the run started."""
    retries: int = 0
    """Transfers repeated: by the engine (presigned again after a 403) and by the client's
    data plane (408/425/429/5xx and transport errors), when the client counts them."""
    api_retries: int = 0
    """API requests of the run (presign, listing, multipart calls) the client repeated after a
    retryable failure, when the client counts them."""
    throttled: int = 0
    """Requests of the run (either plane) the store answered as overloaded (429, 503,
    ``SlowDown``): each was retried after a backoff, and the transfers in flight were cut."""
    verified: int = 0
    """Files transferred whose bytes were checked against a digest: every upload (S3 checked
    the ``Content-MD5``, the client the ETag), downloads checked against the manifest's SHA-256
    or a single-part ETag's MD5."""
    unverified: int = 0
    """Files transferred with nothing to check their bytes against (a multipart object without
    a manifest entry, or checksums turned off)."""
    changed_during_run: int = 0
    """Files deferred because they changed while they were sent: not in this commit, sent by
    the next run (never a failure)."""
    vanished: int = 0
    """Files deferred because they disappeared between the scan and their transfer."""
    deferred: list[str] = field(default_factory=list)
    """Keys of the deferred files (the first ``DEFERRED_NAMED``)."""
    window_lowest: int = 0
    """The fewest files the adaptive window allowed in flight during the run (0: not known)."""
    window_highest: int = 0
    """The most files the adaptive window allowed in flight during the run (0: not known)."""

    @property
    def done(self) -> int:
        """Files handled so far: ``ok + skipped + errors`` and the deferred ones."""
        return self.ok + self.skipped + self.errors + self.changed_during_run + self.vanished

    @property
    def mb_per_sec(self) -> float:
        """Transferred MiB per second of elapsed time."""
        return self.bytes / MIB / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def files_per_sec(self) -> float:
        """Files handled (``done``) per second of elapsed time."""
        return self.done / self.elapsed if self.elapsed > 0 else 0.0


def throttled_count(client: object) -> int:
    """Throttled answers ``client`` has seen on both planes so far (0 when it does not count)."""
    return getattr(getattr(client, "data", None), "throttled", 0) + getattr(client, "api_throttled", 0)


def error_text(exc: BaseException) -> str:
    """A one-line message for the tracker: the exception type and its text, capped."""
    text = str(exc)
    name = type(exc).__name__
    return (f"{name}: {text}" if text else name)[:500]


class Recorder:
    """Counts outcomes, marks them in the tracker (buffered) and fires throttled callbacks."""

    def __init__(
        self,
        tracker: TrackerProtocol,
        *,
        on_progress: ProgressFn | None,
        on_error: ErrorFn | None,
        progress_interval: float,
        client: object | None = None,
    ) -> None:
        self.stats = TransferStats()
        # The client and its data plane count their own retries (if they do); the run reports
        # the increase since it started.
        self._client = client
        self._data_plane = getattr(client, "data", None)
        self._data_retries0 = getattr(self._data_plane, "retries", 0)
        self._api_retries0 = getattr(client, "api_retries", 0)
        self._throttled0 = throttled_count(client)
        self._tracker = tracker
        self._mark = tracker.mark
        self._on_progress = on_progress
        self._on_error = on_error
        self._interval = progress_interval
        self._started = monotonic()
        self._next_progress = self._started + progress_interval

    @classmethod
    def for_config(cls, cfg: Any) -> Recorder:
        """The recorder of one bulk run (upload or download config)."""
        return cls(
            cfg.tracker,
            on_progress=cfg.on_progress,
            on_error=cfg.on_error,
            progress_interval=cfg.progress_interval,
            client=cfg.client,
        )

    # -- outcomes (hot path) ---------------------------------------------------------------

    def ok(
        self,
        key: str,
        size: int,
        *,
        etag: str | None = None,
        verified: bool = False,
        validated: bool = False,
        checked: bool | None = None,
        sha256: str | None = None,
        md5: str | None = None,
        mtime_ns: int | None = None,
    ) -> None:
        """A file was transferred: count its bytes and mark it done with its digests and its
        mtime as sent (upload) or once written (download).
        ``checked``: its bytes were (True) or could not be (False) checked against a digest;
        None counts neither."""
        stats = self.stats
        try:
            self._mark(
                key, size, _DONE, etag=etag, verified=verified, validated=validated, sha256=sha256, md5=md5,
                mtime_ns=mtime_ns,
            )
        except Exception as exc:  # e.g. a key the tracker cannot store: not done for a rerun
            self.error(key, size, exc, mark=False)
            return
        stats.ok += 1
        stats.bytes += size
        if checked is not None:
            if checked:
                stats.verified += 1
            else:
                stats.unverified += 1
        if self._on_progress is not None:
            self._tick()

    def skipped(
        self, key: str, size: int, *, mark: bool = False, etag: str | None = None, mtime_ns: int | None = None
    ) -> None:
        """A file needed no transfer; ``mark`` records it as done (first time it is seen done)."""
        if mark:
            try:
                self._mark(key, size, _DONE, etag=etag, mtime_ns=mtime_ns)
            except Exception as exc:
                self.error(key, size, exc, mark=False)
                return
        self.stats.skipped += 1
        if self._on_progress is not None:
            self._tick()

    def error(self, key: str, size: int, exc: BaseException, *, mark: bool = True) -> None:
        """A file failed: mark it as error and tell ``on_error``; never raises."""
        self.stats.errors += 1
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s failed: %s", key, error_text(exc))
        if mark:
            try:
                self._mark(key, size, _ERROR, error_text(exc))
            except Exception:  # a tracker failure must not hide the file's own error
                logger.exception("tracker could not record the error of %s", key)
        if self._on_error is not None:
            try:
                self._on_error(key, exc)
            except Exception:
                logger.exception("on_error callback failed for %s", key)
        if self._on_progress is not None:
            self._tick()

    def deferred(self, key: str, size: int, vanished: bool) -> None:
        """A file changed or vanished while it was sent: left out of this run (the caller removed
        what it staged and its record), counted and named; the next run sends it."""
        stats = self.stats
        if vanished:
            stats.vanished += 1
        else:
            stats.changed_during_run += 1
        if len(stats.deferred) < DEFERRED_NAMED:
            stats.deferred.append(key)
        if self._on_progress is not None:
            self._tick()

    def retried(self, count: int = 1) -> None:
        self.stats.retries += count

    # -- progress --------------------------------------------------------------------------

    def snapshot(self) -> TransferStats:
        """A copy of the counters with ``elapsed`` set to now."""
        s = self.stats
        data_retries = getattr(self._data_plane, "retries", 0) - self._data_retries0
        return TransferStats(
            ok=s.ok,
            skipped=s.skipped,
            errors=s.errors,
            bytes=s.bytes,
            elapsed=monotonic() - self._started,
            retries=s.retries + data_retries,
            api_retries=getattr(self._client, "api_retries", 0) - self._api_retries0,
            throttled=throttled_count(self._client) - self._throttled0,
            verified=s.verified,
            unverified=s.unverified,
            changed_during_run=s.changed_during_run,
            vanished=s.vanished,
            deferred=list(s.deferred),
        )

    def _tick(self) -> None:
        now = monotonic()
        if now >= self._next_progress:
            self._next_progress = now + self._interval
            self._emit()

    def _emit(self) -> None:
        if self._on_progress is None:
            return
        try:
            self._on_progress(self.snapshot())
        except Exception:
            logger.exception("on_progress callback failed")

    def finish(self, window: tuple[int, int] | None = None) -> TransferStats:
        """Flush the tracker, fire the final progress callback and return the final counters
        (with ``window``: the range of files in flight)."""
        self._tracker.flush()
        final = self.snapshot()
        if window is not None:
            final.window_lowest, final.window_highest = window
            self.stats.window_lowest, self.stats.window_highest = window
        self.stats.elapsed = final.elapsed
        self.stats.retries = final.retries
        self.stats.api_retries = final.api_retries
        self.stats.throttled = final.throttled
        if self._on_progress is not None:
            try:
                self._on_progress(final)
            except Exception:
                logger.exception("on_progress callback failed")
        return final
