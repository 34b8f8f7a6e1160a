"""The tracker schema at version 2, frozen as released (job lease and mtime_ns, before the
digests), to test that an existing database upgrades in place. Never edit: it is what
databases of that release hold."""

from __future__ import annotations

_INDEXES = [
    "CREATE INDEX IF NOT EXISTS ix_rahcp_transfers_claim ON rahcp_transfers (job, lease_expires) "
    "WHERE status <> 'done'",
    "CREATE INDEX IF NOT EXISTS ix_rahcp_transfers_status ON rahcp_transfers (job, status)",
]

SQLITE = [
    "CREATE TABLE rahcp_schema_version (id INTEGER NOT NULL, version INTEGER NOT NULL, "
    "applied_at DATETIME, PRIMARY KEY (id))",
    "CREATE TABLE rahcp_jobs (job TEXT NOT NULL, state VARCHAR(16) DEFAULT 'open' NOT NULL, "
    "bucket TEXT, staging_prefix TEXT, final_prefix TEXT, commit_owner TEXT, "
    "commit_expires FLOAT DEFAULT '0' NOT NULL, lease_owner TEXT, lease_expires FLOAT DEFAULT '0' NOT NULL, "
    "lease_mode VARCHAR(16), created_at DATETIME, updated_at DATETIME, PRIMARY KEY (job))",
    "CREATE TABLE rahcp_transfers (job TEXT NOT NULL, \"key\" TEXT NOT NULL, "
    "size BIGINT DEFAULT '0' NOT NULL, status VARCHAR(16) DEFAULT 'pending' NOT NULL, error TEXT, "
    "etag TEXT, verified BOOLEAN DEFAULT false NOT NULL, validated BOOLEAN DEFAULT false NOT NULL, "
    "lease_owner TEXT, lease_expires FLOAT DEFAULT '0' NOT NULL, attempts INTEGER DEFAULT '0' NOT NULL, "
    "mtime_ns BIGINT, updated_at DATETIME, PRIMARY KEY (job, \"key\"))",
    *_INDEXES,
]

POSTGRES = [
    "CREATE TABLE rahcp_schema_version (id INTEGER NOT NULL, version INTEGER NOT NULL, "
    "applied_at TIMESTAMP WITH TIME ZONE, PRIMARY KEY (id))",
    "CREATE TABLE rahcp_jobs (job TEXT COLLATE \"C\" NOT NULL, state VARCHAR(16) DEFAULT 'open' NOT NULL, "
    "bucket TEXT, staging_prefix TEXT, final_prefix TEXT, commit_owner TEXT, "
    "commit_expires FLOAT DEFAULT '0' NOT NULL, lease_owner TEXT, lease_expires FLOAT DEFAULT '0' NOT NULL, "
    "lease_mode VARCHAR(16), created_at TIMESTAMP WITH TIME ZONE, updated_at TIMESTAMP WITH TIME ZONE, "
    "PRIMARY KEY (job))",
    "CREATE TABLE rahcp_transfers (job TEXT COLLATE \"C\" NOT NULL, key TEXT COLLATE \"C\" NOT NULL, "
    "size BIGINT DEFAULT '0' NOT NULL, status VARCHAR(16) DEFAULT 'pending' NOT NULL, error TEXT, "
    "etag TEXT, verified BOOLEAN DEFAULT false NOT NULL, validated BOOLEAN DEFAULT false NOT NULL, "
    "lease_owner TEXT, lease_expires FLOAT DEFAULT '0' NOT NULL, attempts INTEGER DEFAULT '0' NOT NULL, "
    "mtime_ns BIGINT, updated_at TIMESTAMP WITH TIME ZONE, PRIMARY KEY (job, key))",
    *_INDEXES,
]

ROWS = [
    "INSERT INTO rahcp_schema_version (id, version, applied_at) VALUES (1, 2, '2026-12-01 08:00:00')",
    "INSERT INTO rahcp_jobs (job, state, bucket, staging_prefix, final_prefix, commit_owner, "
    "commit_expires, lease_owner, lease_expires, lease_mode, created_at, updated_at) VALUES "
    "('v2-job', 'committed', 'bkt', '.rahcp-staging/v2-job/', 'final/', NULL, 0, NULL, 0, NULL, "
    "'2026-12-01 08:00:00', '2026-12-01 09:00:00')",
    "INSERT INTO rahcp_transfers (job, \"key\", size, status, error, etag, verified, validated, "
    "lease_owner, lease_expires, attempts, mtime_ns, updated_at) VALUES "
    "('v2-job', '.rahcp-staging/v2-job/a.bin', 5000000000, 'done', NULL, '\"etag-a\"', true, true, "
    "'run-0', 0, 1, 1700000000000000001, '2026-12-01 09:00:00'), "
    "('v2-job', '.rahcp-staging/v2-job/b.bin', 20, 'error', 'SSL timeout', NULL, false, false, "
    "'run-0', 0, 2, NULL, '2026-12-01 09:00:00')",
]
