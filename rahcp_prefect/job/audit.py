"""The audit of a final prefix: what its objects hash to, against what the job says they hold.

The expectation comes from the prefix's manifest (``manifest``) or, without one, from the job's
tracker records (their final keys and recorded SHA-256). Every listed object is read and hashed
(``bulk.verify.hash_objects``); the report names matches, mismatches (other bytes), missing
objects (expected, not there), extra objects (there, not expected) and objects that could not
be read. Anything but matches fails the audit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from rahcp_prefect.bulk.verify import HashedObjects
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


def compare(expected: Mapping[str, str], hashed: HashedObjects, source: str) -> AuditReport:
    """The report of ``hashed`` (what the prefix holds) against ``expected`` (key -> sha256)."""
    report = AuditReport(source=source, expected=len(expected))
    for key in sorted(expected):
        want = expected[key].lower()
        found = hashed.digests.get(key)
        if found is not None:
            if found.sha256 == want:
                report.matches += 1
            else:
                report.mismatches.append((key, want, found.sha256))
        elif key in hashed.errors:
            report.unreadable[key] = hashed.errors[key]
        else:
            report.missing.append(key)
    report.extra = sorted(key for key in hashed.digests.keys() | hashed.errors.keys() if key not in expected)
    return report


def expected_from_tracker(tracker: TrackerProtocol) -> tuple[dict[str, str], list[str]]:
    """``({final key: sha256}, [final keys without a recorded SHA-256])`` of the job's done
    files; staged keys are mapped to the final prefix when the job has one."""
    info = tracker.job_info()
    staging = info.staging_prefix if info is not None else None
    final = info.final_prefix if info is not None else None
    digests: dict[str, str] = {}
    unrecorded: list[str] = []
    for key, record in tracker.done_digests().items():
        if staging and final is not None:
            if not key.startswith(staging):
                continue
            key = final + key[len(staging):]
        if record.sha256 is None:
            unrecorded.append(key)
        else:
            digests[key] = record.sha256
    return digests, sorted(unrecorded)
