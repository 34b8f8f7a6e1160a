"""The tracker's tables, shared by every backend (SQLModel, so SQLAlchemy's dialects apply).

Backends create these tables from the definitions here (see ``schema``) but run their hot
paths (buffered marks, claims, ``done_keys``) as plain SQL for speed. Column meaning:

- ``lease_expires``: Unix seconds, by the database's clock on PostgreSQL; ``0`` means no lease.
  A key is claimable when it is not done and ``lease_expires`` is in the past. ``mark`` leaves
  the lease alone, so a key marked error is retried once its lease ends (or is released).
- ``lease_owner``: who claimed the key last (kept after the lease ends, for audit).
- ``attempts``: how many times ``claim`` handed the key out.
- ``mtime_ns``: the file's modification time (ns) as sent, None when not known; with ``size``
  it tells a rerun whether a file changed since it was sent.
- ``sha256``/``md5``: the file's digests (hex) as sent or received, None when not computed;
  ``md5`` of a multipart upload is S3's composite ``<md5 of the part md5s>-N``.
- ``rahcp_jobs.lease_*``: the job lease of the run(s) working on the job (``lease_mode``
  ``single``: one exclusive holder; ``cooperative``: shared by every cooperative run, the
  owner is the last one that renewed). Unix seconds like the key leases; expired = free.
- ``rahcp_uploads`` / ``rahcp_parts``: the unfinished multipart upload of a key (upload id,
  part size, the file's size and mtime when it started) and each part S3 acknowledged (ETag,
  MD5 of the bytes sent), so a rerun after a crash sends only the missing parts (the SDK's
  ``PartStore``). A row goes when its upload completes or is aborted.
- ``rahcp_retained``: files whose archived object was not replaced (retention, hold), so a
  rerun sends one again only once its retention may have ended (``job/retained.py``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Float, Index, String, Text, text
from sqlmodel import Field, SQLModel

#: Keys and job names compare byte-wise on PostgreSQL (fast, locale-independent, exact).
KeyText = Text().with_variant(Text(collation="C"), "postgresql")
Timestamp = DateTime(timezone=True)
#: Claims only ever look at keys that are not done; the claim index leaves done keys out.
NOT_DONE = text("status <> 'done'")


class Transfer(SQLModel, table=True):
    """One key of one job: its latest outcome, audit flags and claim lease."""

    __tablename__ = "rahcp_transfers"
    __table_args__ = (
        Index("ix_rahcp_transfers_status", "job", "status"),
        Index(
            "ix_rahcp_transfers_claim",
            "job",
            "lease_expires",
            postgresql_where=NOT_DONE,
            sqlite_where=NOT_DONE,
        ),
    )

    job: str = Field(primary_key=True, sa_type=KeyText)
    key: str = Field(primary_key=True, sa_type=KeyText)
    size: int = Field(default=0, sa_type=BigInteger, sa_column_kwargs={"server_default": "0"})
    status: str = Field(default="pending", sa_type=String(16), sa_column_kwargs={"server_default": "pending"})
    error: str | None = Field(default=None, sa_type=Text)
    etag: str | None = Field(default=None, sa_type=Text)
    verified: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})
    validated: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})
    lease_owner: str | None = Field(default=None, sa_type=Text)
    lease_expires: float = Field(default=0.0, sa_type=Float, sa_column_kwargs={"server_default": "0"})
    attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    mtime_ns: int | None = Field(default=None, sa_type=BigInteger)
    sha256: str | None = Field(default=None, sa_type=Text)
    md5: str | None = Field(default=None, sa_type=Text)
    updated_at: datetime | None = Field(default=None, sa_type=Timestamp)


class Job(SQLModel, table=True):
    """One job: commit state, where its staging lives, the commit lock and the job lease."""

    __tablename__ = "rahcp_jobs"

    job: str = Field(primary_key=True, sa_type=KeyText)
    state: str = Field(default="open", sa_type=String(16), sa_column_kwargs={"server_default": "open"})
    bucket: str | None = Field(default=None, sa_type=Text)
    staging_prefix: str | None = Field(default=None, sa_type=Text)
    final_prefix: str | None = Field(default=None, sa_type=Text)
    commit_owner: str | None = Field(default=None, sa_type=Text)
    commit_expires: float = Field(default=0.0, sa_type=Float, sa_column_kwargs={"server_default": "0"})
    lease_owner: str | None = Field(default=None, sa_type=Text)
    lease_expires: float = Field(default=0.0, sa_type=Float, sa_column_kwargs={"server_default": "0"})
    lease_mode: str | None = Field(default=None, sa_type=String(16))
    created_at: datetime | None = Field(default=None, sa_type=Timestamp)
    updated_at: datetime | None = Field(default=None, sa_type=Timestamp)


class SchemaVersion(SQLModel, table=True):
    """A single row (id 1): the schema version this database is at, for later migrations."""

    __tablename__ = "rahcp_schema_version"

    id: int = Field(default=1, primary_key=True)
    version: int
    applied_at: datetime | None = Field(default=None, sa_type=Timestamp)


class Upload(SQLModel, table=True):
    """The unfinished multipart upload of one key of a job."""

    __tablename__ = "rahcp_uploads"

    job: str = Field(primary_key=True, sa_type=KeyText)
    key: str = Field(primary_key=True, sa_type=KeyText)
    bucket: str = Field(sa_type=Text)
    upload_id: str = Field(sa_type=Text)
    part_size: int = Field(sa_type=BigInteger)
    size: int = Field(sa_type=BigInteger)
    mtime_ns: int = Field(sa_type=BigInteger)
    updated_at: datetime | None = Field(default=None, sa_type=Timestamp)


class Part(SQLModel, table=True):
    """One acknowledged part of an unfinished multipart upload."""

    __tablename__ = "rahcp_parts"

    job: str = Field(primary_key=True, sa_type=KeyText)
    key: str = Field(primary_key=True, sa_type=KeyText)
    part_number: int = Field(primary_key=True)
    upload_id: str = Field(sa_type=Text)
    etag: str = Field(sa_type=Text)
    md5: str = Field(sa_type=String(32))


class Retained(SQLModel, table=True):
    """A file of a job whose archived object was not replaced (retention or hold): when its
    retention ends if the namespace said (``until``, Unix seconds), how many times it was
    refused (``step``) and when it is next sent (``next_try``)."""

    __tablename__ = "rahcp_retained"

    job: str = Field(primary_key=True, sa_type=KeyText)
    key: str = Field(primary_key=True, sa_type=KeyText)
    until: float | None = Field(default=None, sa_type=Float)
    step: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    next_try: float = Field(default=0.0, sa_type=Float, sa_column_kwargs={"server_default": "0"})
    updated_at: datetime | None = Field(default=None, sa_type=Timestamp)


TABLES = (
    SchemaVersion.__table__, Job.__table__, Transfer.__table__, Upload.__table__, Part.__table__, Retained.__table__
)
NEW_IN_4 = (Upload.__table__, Part.__table__)
"""Tables schema version 4 added (created by its migration, compiled for the dialect)."""
NEW_IN_5 = (Retained.__table__,)
"""Tables schema version 5 added: retained files and when each is tried again."""
