"""The tracker as the SDK's ``PartStore``: unfinished multipart uploads and their parts, on
both backends; and a database of the previous schema version upgraded in place to hold them."""

from __future__ import annotations

from rahcp_prefect.client.resume import PartStore, RecordedPart, RecordedUpload
from rahcp_prefect.tracker import TransferStatus, create_tracker, schema

from .conftest import OpenTracker
from .test_schema import _columns, _create_frozen, _query, fresh_target  # noqa: F401  (the fixture)

KEY = ".rahcp-staging/run-1/scans/big.tif"


def test_parts_are_recorded_replaced_and_forgotten(open_tracker: OpenTracker) -> None:
    tracker = open_tracker()
    other_job = open_tracker(job=tracker.job + "-other")
    assert isinstance(tracker, PartStore)
    assert tracker.recorded_upload("bkt", KEY) is None
    tracker.record_upload("bkt", KEY, "up-1", 5 << 20, 12 << 20, 1_700_000_000_123_456_789)
    tracker.record_part("bkt", KEY, "up-1", 2, '"e2"', "m2")
    tracker.record_part("bkt", KEY, "up-1", 1, '"e1"', "m1")
    tracker.record_part("bkt", KEY, "up-1", 1, '"e1b"', "m1b")  # a part sent again replaces its row
    assert tracker.recorded_upload("bkt", KEY) == RecordedUpload(
        "up-1", 5 << 20, 12 << 20, 1_700_000_000_123_456_789,
        {1: RecordedPart('"e1b"', "m1b"), 2: RecordedPart('"e2"', "m2")},
    )
    assert tracker.recorded_upload("other-bucket", KEY) is None
    assert other_job.recorded_upload("bkt", KEY) is None, "scoped by job"
    # a new upload of the same key drops the old one and its parts
    tracker.record_upload("bkt", KEY, "up-2", 5 << 20, 12 << 20, 1)
    assert tracker.recorded_upload("bkt", KEY) == RecordedUpload("up-2", 5 << 20, 12 << 20, 1, {})
    tracker.record_part("bkt", KEY, "up-2", 3, '"e3"', "m3")
    tracker.forget_upload("bkt", KEY)
    assert tracker.recorded_upload("bkt", KEY) is None
    tracker.record_upload("bkt", KEY, "up-3", 5 << 20, 12 << 20, 1)
    tracker.delete_job()
    assert tracker.recorded_upload("bkt", KEY) is None, "deleting the job forgets its uploads"


def schema_at(target: str, backend: str, version: int) -> None:
    """A database as a release of schema ``version`` left it: version 1 tables and rows, every
    migration up to ``version`` applied (a migration of new tables compiled for the backend)."""
    from sqlalchemy.dialects import postgresql, sqlite

    from tests.tracker import schema_v1

    dialect = sqlite.dialect() if backend == "sqlite" else postgresql.dialect()
    _create_frozen(target, backend, schema_v1)
    for step in range(2, version + 1):
        for statement in schema.MIGRATIONS[step]:
            for sql in [statement] if isinstance(statement, str) else statement(dialect):
                _query(target, sql)
    _query(target, f"UPDATE rahcp_schema_version SET version = {version}")


def _previous_schema(target: str, backend: str) -> None:
    """A database of the schema before the part tables (version 3), with rows in it."""
    schema_at(target, backend, 3)


def test_a_database_of_the_previous_schema_gets_the_part_tables(fresh_target: str, backend: str) -> None:
    _previous_schema(fresh_target, backend)
    staged = ".rahcp-staging/run-0/"
    with create_tracker(fresh_target, job="old-job") as tracker:  # type: ignore[attr-defined]
        assert tracker.done_entries() == {staged + "a.bin": 5_000_000_000}, "old rows intact"
        assert tracker.summary() == {"pending": 1, "done": 1, "error": 1}
        assert tracker.error_details() == [(staged + "b.bin", "SSL timeout")]
        tracker.record_upload("bkt", staged + "c.bin", "up", 5 << 20, 30, 7)
        tracker.record_part("bkt", staged + "c.bin", "up", 1, '"e"', "m")
        assert tracker.recorded_upload("bkt", staged + "c.bin").parts == {1: RecordedPart('"e"', "m")}
        tracker.mark(staged + "c.bin", 30, TransferStatus.done)
    assert _query(fresh_target, "SELECT version FROM rahcp_schema_version") == [(schema.SCHEMA_VERSION,)]
    assert _query(fresh_target, "SELECT part_number, md5 FROM rahcp_parts") == [(1, "m")]


def test_a_migrated_database_has_the_part_tables_of_a_fresh_one(fresh_target: str, backend: str) -> None:
    from rahcp_prefect.tracker.models import Part, Upload

    _previous_schema(fresh_target, backend)
    create_tracker(fresh_target, job="j").close()
    for table in (Upload.__table__, Part.__table__):
        assert _columns(fresh_target, backend, table.name) == {column.name for column in table.columns}
