"""PostgreSQL-only behaviour: the pool survives dropped connections; leases use the server clock."""

from __future__ import annotations

import uuid

import psycopg

from rahcp_prefect.tracker import PostgresTracker, TransferStatus


def test_pool_recovers_when_the_server_drops_its_connections(postgres_dsn: str, tracker_job: str) -> None:
    name = f"rahcp-test-{uuid.uuid4().hex[:8]}"
    tracker = PostgresTracker(postgres_dsn, job=tracker_job, application_name=name)
    try:
        tracker.mark("a", 1, TransferStatus.done)
        tracker.flush()
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %s",
                (name,),
            ).fetchone()[0]
        assert killed >= 1
        tracker.mark("b", 2, TransferStatus.done)
        assert tracker.done_keys() == {"a", "b"}  # the pool checked, replaced, and carried on
    finally:
        tracker.delete_job()
        tracker.close()


def test_leases_follow_the_database_clock(postgres_dsn: str, tracker_job: str) -> None:
    tracker = PostgresTracker(postgres_dsn, job=tracker_job)
    try:
        tracker.register([("k", 1)])
        tracker.claim("run", 1, 60)
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            left = conn.execute(
                "SELECT lease_expires - extract(epoch from now())::float8 FROM rahcp_transfers "
                "WHERE job = %s AND \"key\" = 'k'",
                (tracker_job,),
            ).fetchone()[0]
        assert 58 < left <= 60
    finally:
        tracker.delete_job()
        tracker.close()
