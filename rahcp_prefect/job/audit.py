"""The audit of a final prefix: what its objects hash to, against what the job says they hold.

The expectation comes from the prefix's manifest (``manifest``) or, without one, from the job's
tracker records (their final keys and recorded SHA-256). Every listed object is read and hashed
(``bulk.verify.hash_objects``), handed over in key order and merged with the expectation in key
order (``StreamedAudit``), so only the problems are held; the report names matches, mismatches (other bytes), missing
objects (expected, not there), extra objects (there, not expected) and objects that could not
be read. Anything but matches fails the audit.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from rahcp_prefect.bulk.verify import ObjectDigest
from rahcp_prefect.tracker.protocol import TrackerProtocol

FIRST_NAMED = 20
"""How many keys of each kind the failure message names."""


@dataclass
class AuditReport:
    """The audit's verdict, key by key."""

    source: str  # "manifest" or "tracker"
    expected: int = 0
    matches: int = 0
    mismatches: list[tuple[str, str, str]] = field(default_factory=list)  # (key, expected, found)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)
    unrecorded: list[str] = field(default_factory=list)  # tracker records without a SHA-256
    tag_files: list[str] = field(default_factory=list)  # problems of the tag files (rahcp-mtimes.txt)

    @property
    def ok(self) -> bool:
        return not (self.mismatches or self.missing or self.extra or self.unreadable or self.unrecorded or self.tag_files)

    def problems(self) -> list[str]:
        """One line per problem, mismatches first."""
        return (
            [f"{key}: SHA-256 {found}, expected {want}" for key, want, found in self.mismatches]
            + [f"{key}: missing" for key in self.missing]
            + [f"{key}: not expected (extra)" for key in self.extra]
            + [f"{key}: unreadable ({error})" for key, error in sorted(self.unreadable.items())]
            + [f"{key}: no SHA-256 recorded" for key in self.unrecorded]
            + list(self.tag_files)
        )

    def summary(self) -> str:
        problems = self.problems()
        named = "; ".join(problems[:FIRST_NAMED]) + (f"; and {len(problems) - FIRST_NAMED} more" if len(problems) > FIRST_NAMED else "")
        return (
            f"{self.matches} of {self.expected} object(s) match the {self.source}: {len(self.mismatches)} mismatch(es), "
            f"{len(self.missing)} missing, {len(self.extra)} extra, {len(self.unreadable)} unreadable"
            + (f" ({named})" if problems else "")
        )


class StreamedAudit:
    """The audit as a merge: objects handed in key order (``hash_objects(on_hashed=...)``)
    against ``expected`` ``(key, sha256)`` in key order; only problems are kept, matches counted."""

    def __init__(self, expected: Iterable[tuple[str, str]], source: str) -> None:
        self.report = AuditReport(source=source)
        self._expected = iter(expected)
        self._pending = self._next()

    def _next(self) -> tuple[str, str] | None:
        found = next(self._expected, None)
        if found is not None:
            self.report.expected += 1
        return found

    def hashed(self, key: str, digest: ObjectDigest | None, error: str | None) -> None:
        """One object read (its digest) or not (``error``), in key order."""
        while self._pending is not None and self._pending[0] < key:
            self.report.missing.append(self._pending[0])
            self._pending = self._next()
        if self._pending is None or self._pending[0] != key:
            self.report.extra.append(key)
            return
        want = self._pending[1].lower()
        self._pending = self._next()
        if digest is None:
            self.report.unreadable[key] = str(error)
        elif digest.sha256 == want:
            self.report.matches += 1
        else:
            self.report.mismatches.append((key, want, digest.sha256))

    def finish(self) -> AuditReport:
        """The report, once every object was handed over: what was never seen is missing."""
        while self._pending is not None:
            self.report.missing.append(self._pending[0])
            self._pending = self._next()
        return self.report


def expected_from_tracker(tracker: TrackerProtocol, unrecorded: list[str]) -> Iterator[tuple[str, str]]:
    """``(final key, sha256)`` of the job's done files in key order, a page at a time; the
    final keys of files without a recorded SHA-256 go to ``unrecorded``. Staged keys are
    mapped to the final prefix when the job has one."""
    info = tracker.job_info()
    staging = info.staging_prefix if info is not None else None
    final = info.final_prefix if info is not None else None
    prefix = staging if staging and final is not None else None
    for key, record in tracker.iter_done_digests(prefix or ""):
        if prefix is not None and final is not None:
            key = final + key[len(prefix):]
        if record.sha256 is None:
            unrecorded.append(key)
        else:
            yield key, record.sha256
