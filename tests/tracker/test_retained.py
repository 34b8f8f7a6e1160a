"""The tracker's record of retained files (schema 5), on both backends; and a database of the
previous schema (4) upgraded in place to hold it."""

from __future__ import annotations

from rahcp_prefect.tracker import TransferStatus, create_tracker, schema
from rahcp_prefect.tracker.models import Retained
from rahcp_prefect.tracker.retained import RetainedFile

from .conftest import OpenTracker
from .test_parts import schema_at
from .test_schema import _columns, _query, fresh_target  # noqa: F401  (the fixture)

STAGED = ".rahcp-staging/run-1/"


def test_retained_files_are_noted_updated_and_forgotten_once_done(open_tracker: OpenTracker) -> None:
    tracker = open_tracker()
    other_job = open_tracker(job=tracker.job + "-other")
    tracker.mark(STAGED + "a.txt", 5, TransferStatus.error, "retained")
    tracker.mark(STAGED + "b.txt", 5, TransferStatus.error, "retained")
    tracker.note_retained([(STAGED + "b.txt", RetainedFile(None, 1, 100.0)), (STAGED + "a.txt", RetainedFile(50.0, 1, 50.0))])
    tracker.note_retained([(STAGED + "b.txt", RetainedFile(None, 2, 900.0))])  # refused again: the next step
    assert list(tracker.retained_files()) == [
        (STAGED + "a.txt", RetainedFile(50.0, 1, 50.0)), (STAGED + "b.txt", RetainedFile(None, 2, 900.0)),
    ]
    assert list(other_job.retained_files()) == [], "scoped by job"
    tracker.mark(STAGED + "a.txt", 6, TransferStatus.done)
    tracker.flush()
    assert tracker.forget_committed_retained() == 1, "a file placed at last is no longer retained"
    assert [key for key, _ in tracker.retained_files()] == [STAGED + "b.txt"]
    tracker.delete_job()
    assert list(tracker.retained_files()) == [], "deleting the job forgets them"


def test_a_database_of_schema_4_gets_the_retained_table(fresh_target: str, backend: str) -> None:
    schema_at(fresh_target, backend, 4)
    staged = ".rahcp-staging/run-0/"
    with create_tracker(fresh_target, job="old-job") as tracker:  # type: ignore[attr-defined]
        assert tracker.done_entries() == {staged + "a.bin": 5_000_000_000}, "old rows intact"
        tracker.note_retained([(staged + "b.bin", RetainedFile(1.5, 1, 1.5))])
        assert list(tracker.retained_files()) == [(staged + "b.bin", RetainedFile(1.5, 1, 1.5))]
    assert _query(fresh_target, "SELECT version FROM rahcp_schema_version") == [(schema.SCHEMA_VERSION,)]
    assert _columns(fresh_target, backend, Retained.__table__.name) == {c.name for c in Retained.__table__.columns}
