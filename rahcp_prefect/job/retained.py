"""Retained files are not sent again every night: each waits until its retention may have ended.

A changed file whose archived object is under retention or on hold is refused (403) and left as
it is (``commit.place_staged``). Sending it again the next night would be refused again, one PUT
per retained file per night for as long as the retention lasts. So the commit records each such
file in the tracker (``note_left``): when its retention ends, where the namespace says (its
default retention, from MAPI, counted from the object's Last-Modified), and when to try again:
at that end when it is known, else after a growing interval (``STEPS``: the next night, a week,
then every month; a hold has no end the API tells). The sync leaves a waiting file out
(``Waiting``) and the result counts them and says when each is tried next.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

from rahcp_prefect.client import HCPClient, HCPError
from rahcp_prefect.client.namespace import retention_until
from rahcp_prefect.tracker.protocol import TrackerProtocol, TransferStatus
from rahcp_prefect.tracker.retained import RetainedFile

logger = logging.getLogger(__name__)

NIGHT, WEEK, MONTH = 20 * 3600.0, 7 * 86400.0, 30 * 86400.0
STEPS = (NIGHT, WEEK, MONTH)
"""The waits after the 1st, 2nd and every later refusal when the retention's end is not known
(the next night: 20 h, so a run at the same hour the next day tries again)."""

SHOWN = 20
"""Retained files named with their next try in a run's result; the rest are counted."""


def next_try(step: int, until: float | None, now: float) -> float:
    """When a file refused ``step`` times is sent again: at its retention's end when known and
    ahead, else after ``STEPS[step - 1]`` (the last step repeats)."""
    if until is not None and until > now:
        return until
    return now + STEPS[min(max(step, 1), len(STEPS)) - 1]


def stored_at(last_modified: str) -> float:
    """Epoch seconds of a HEAD's ``last-modified``: the API sends Python's ``str(datetime)``
    (``2026-11-24 21:43:47+00:00``, ``hcp-api.md``); an HTTP-date is read too."""
    try:
        return datetime.fromisoformat(last_modified).timestamp()
    except ValueError:
        return parsedate_to_datetime(last_modified).timestamp()


async def retention_end(client: HCPClient, bucket: str, key: str, retention: str | None) -> float | None:
    """When the retention of ``bucket/key`` ends, by the namespace's default retention
    (``retention``) from the object's Last-Modified; None when not known or never."""
    if not retention:
        return None
    try:
        end = retention_until(retention, stored_at((await client.s3.head(bucket, key))["last-modified"]))
    except (HCPError, KeyError, TypeError, ValueError) as exc:
        logger.info("Retention end of %s/%s not known: %s", bucket, key, exc)
        return None
    return None if end is None or math.isinf(end) else end


async def note_left(
    client: HCPClient, tracker: TrackerProtocol, left: list[tuple[str, str]], bucket: str, retention: str | None
) -> None:
    """Record the files the commit left (``(staged key, final key)``) with their next try."""
    if not left:
        return
    known = dict(tracker.retained_files())
    now = time.time()
    notes = []
    for staged_key, final_key in left:
        until = await retention_end(client, bucket, final_key, retention)
        step = known[staged_key].step + 1 if staged_key in known else 1
        notes.append((staged_key, RetainedFile(until, step, next_try(step, until, now))))
    tracker.note_retained(notes)


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Waiting:
    """The retained files a run leaves out (their next try is ahead), as the sync meets them."""

    files: dict[str, RetainedFile]
    now: float = field(default_factory=time.time)
    left_out: int = 0

    @classmethod
    def of(cls, tracker: TrackerProtocol) -> Waiting:
        now = time.time()
        return cls({key: found for key, found in tracker.retained_files() if found.next_try > now}, now)

    def waits(self, key: str) -> bool:
        """Whether the file of staged ``key`` waits (counted in ``left_out``): the sync leaves it out."""
        if key in self.files:
            self.left_out += 1
            return True
        return False


def waiting_in(tracker: TrackerProtocol, status: TransferStatus) -> int:
    """How many retained files waiting for their next try the tracker holds with ``status``: a
    cooperative run neither waits for them (pending, registered by a run that had not seen them
    retained) nor counts them as failed (``error``, as the commit recorded them)."""
    waiting = Waiting.of(tracker).files
    if not waiting:
        return 0
    return sum(1 for found in tracker.statuses_of(waiting).values() if found is status)


def retained_fields(tracker: TrackerProtocol, staging_prefix: str, final_prefix: str) -> dict[str, object]:
    """The result's count of retained files waiting for their next try, and the first by final
    key with that time (UTC)."""
    now = time.time()
    waiting = [(key, found) for key, found in tracker.retained_files() if found.next_try > now]
    if not waiting:
        return {}
    shown = {final_prefix + key[len(staging_prefix):]: iso(found.next_try) for key, found in waiting[:SHOWN]}
    return {"retained_waiting": len(waiting), "retained_next_try": shown}
