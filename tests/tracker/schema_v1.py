"""The tracker schema at version 1, frozen as released (before the job lease and mtime_ns), to
test that an existing database upgrades in place. Never edit: it is what old databases hold."""

from __future__ import annotations

_V1_COMMON_INDEXES = [
    "CREATE INDEX IF NOT EXISTS ix_rahcp_transfers_claim ON rahcp_transfers (job, lease_expires) "
    "WHERE status <> 'done'",
    "CREATE INDEX IF NOT EXISTS ix_rahcp_transfers_status ON rahcp_transfers (job, status)",
]

SQLITE = [
    "CREATE TABLE rahcp_schema_version (id INTEGER NOT NULL, version INTEGER NOT NULL, "
    "applied_at DATETIME, PRIMARY KEY (id))",
    "CREATE TABLE rahcp_jobs (job TEXT NOT NULL, state VARCHAR(16) DEFAULT 'open' NOT NULL, "
    "bucket TEXT, staging_prefix TEXT, final_prefix TEXT, commit_owner TEXT, "
    "commit_expires FLOAT DEFAULT '0' NOT NULL, created_at DATETIME, updated_at DATETIME, "
    "PRIMARY KEY (job))",
    "CREATE TABLE rahcp_transfers (job TEXT NOT NULL, \"key\" TEXT NOT NULL, "
    "size BIGINT DEFAULT '0' NOT NULL, status VARCHAR(16) DEFAULT 'pending' NOT NULL, error TEXT, "
    "etag TEXT, verified BOOLEAN DEFAULT false NOT NULL, validated BOOLEAN DEFAULT false NOT NULL, "
    "lease_owner TEXT, lease_expires FLOAT DEFAULT '0' NOT NULL, attempts INTEGER DEFAULT '0' NOT NULL, "
    "updated_at DATETIME, PRIMARY KEY (job, \"key\"))",
    *_V1_COMMON_INDEXES,
]

POSTGRES = [
    "CREATE TABLE rahcp_schema_version (id INTEGER NOT NULL, version INTEGER NOT NULL, "
    "applied_at TIMESTAMP WITH TIME ZONE, PRIMARY KEY (id))",
    "CREATE TABLE rahcp_jobs (job TEXT COLLATE \"C\" NOT NULL, state VARCHAR(16) DEFAULT 'open' NOT NULL, "
    "bucket TEXT, staging_prefix TEXT, final_prefix TEXT, commit_owner TEXT, "
    "commit_expires FLOAT DEFAULT '0' NOT NULL, created_at TIMESTAMP WITH TIME ZONE, "
    "updated_at TIMESTAMP WITH TIME ZONE, PRIMARY KEY (job))",
    "CREATE TABLE rahcp_transfers (job TEXT COLLATE \"C\" NOT NULL, key TEXT COLLATE \"C\" NOT NULL, "
    "size BIGINT DEFAULT '0' NOT NULL, status VARCHAR(16) DEFAULT 'pending' NOT NULL, error TEXT, "
    "etag TEXT, verified BOOLEAN DEFAULT false NOT NULL, validated BOOLEAN DEFAULT false NOT NULL, "
    "lease_owner TEXT, lease_expires FLOAT DEFAULT '0' NOT NULL, attempts INTEGER DEFAULT '0' NOT NULL, "
    "updated_at TIMESTAMP WITH TIME ZONE, PRIMARY KEY (job, key))",
    *_V1_COMMON_INDEXES,
]

#: Rows a version-1 database holds: a committed job, and its keys in every status.
ROWS = [
    "INSERT INTO rahcp_schema_version (id, version, applied_at) VALUES (1, 1, '2026-11-30 08:00:00')",
    "INSERT INTO rahcp_jobs (job, state, bucket, staging_prefix, final_prefix, commit_owner, "
    "commit_expires, created_at, updated_at) VALUES ('old-job', 'committed', 'bkt', "
    "'.rahcp-staging/run-0/', 'final/', NULL, 0, '2026-11-30 08:00:00', '2026-11-30 09:00:00')",
    "INSERT INTO rahcp_transfers (job, \"key\", size, status, error, etag, verified, validated, "
    "lease_owner, lease_expires, attempts, updated_at) VALUES "
    "('old-job', '.rahcp-staging/run-0/a.bin', 5000000000, 'done', NULL, '\"etag-a\"', true, true, "
    "'run-0', 0, 1, '2026-11-30 09:00:00'), "
    "('old-job', '.rahcp-staging/run-0/b.bin', 20, 'error', 'SSL timeout', NULL, false, false, "
    "'run-0', 0, 2, '2026-11-30 09:00:00'), "
    "('old-job', '.rahcp-staging/run-0/c.bin', 30, 'pending', NULL, NULL, false, false, "
    "NULL, 0, 0, '2026-11-30 09:00:00')",
]
