"""The three leases of a job, checked here and stored by the backend: claims (a run's lease on
keys), the commit lock, and the job lease, whose SQL is written once over the backend's clock."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

from rahcp_prefect.tracker.checks import check_key, check_positive
from rahcp_prefect.tracker.marks import MarkBuffer
from rahcp_prefect.tracker.protocol import LeaseAnswer, LeaseMode
from rahcp_prefect.tracker.tables import JOBS


class Leases(MarkBuffer):
    """``claim``, ``acquire_commit`` and the job lease (take, renew, release)."""

    #: The backend's clock as an SQL expression of Unix seconds (PostgreSQL: the database's).
    _NOW: ClassVar[str]

    # -- claims and the commit lock: checked here, stored by the backend ----------------
    def claim(self, owner: str, limit: int, lease_seconds: float) -> list[tuple[str, int]]:
        """Lease up to ``limit`` pending (or lease-expired, not done) keys to ``owner``."""
        check_key(owner, "owner")
        check_positive("limit", limit)
        check_positive("lease_seconds", lease_seconds)
        return self._claim(owner, limit, lease_seconds)

    @abstractmethod
    def _claim(self, owner: str, limit: int, lease_seconds: float) -> list[tuple[str, int]]:
        """``claim`` with checked arguments, atomic against other claimers."""

    def acquire_commit(self, owner: str, lease_seconds: float) -> bool:
        """Take the job's commit lock: True for exactly one owner until it releases or expires.

        The holder calling again renews its lease. Creates the job's row if there is none.
        """
        check_key(owner, "owner")
        check_positive("lease_seconds", lease_seconds)
        return self._acquire_commit(owner, lease_seconds)

    @abstractmethod
    def _acquire_commit(self, owner: str, lease_seconds: float) -> bool:
        """``acquire_commit`` with checked arguments, atomic against other callers."""

    # -- the job lease, written once over ``_write_transaction`` and the backend's clock ---
    def take_job_lease(
        self, owner: str, lease_seconds: float, mode: LeaseMode = LeaseMode.single
    ) -> LeaseAnswer:
        """Take the job lease if it is free, expired or ``owner``'s (renewed); a cooperative run
        also shares a live cooperative lease (which then lasts until the latest expiry).

        Atomic: one statement under the job row's lock (PostgreSQL) or ``BEGIN IMMEDIATE``
        (SQLite), so of single-mode runs taking at once exactly one wins. The answer names the
        holder when the caller did not get the lease. Creates the job's row if needed.
        """
        check_key(owner, "owner")
        check_positive("lease_seconds", lease_seconds)
        wanted = LeaseMode(mode).value
        p, now, j = self._PARAM, self._NOW, JOBS
        take = f"""
        INSERT INTO {j} (job, state, lease_owner, lease_expires, lease_mode, created_at, updated_at)
        VALUES ({p}, 'open', {p}, {now} + {p}, {p}, {p}, {p})
        ON CONFLICT (job) DO UPDATE SET
          lease_owner = excluded.lease_owner,
          lease_expires = CASE
            WHEN {j}.lease_mode = 'cooperative' AND excluded.lease_mode = 'cooperative'
             AND {j}.lease_expires > excluded.lease_expires THEN {j}.lease_expires
            ELSE excluded.lease_expires END,
          lease_mode = excluded.lease_mode
        WHERE {j}.lease_owner IS NULL OR {j}.lease_expires < {now}
           OR ({j}.lease_mode = excluded.lease_mode
               AND ({j}.lease_owner = excluded.lease_owner OR excluded.lease_mode = 'cooperative'))
        RETURNING job
        """
        read = (
            f"SELECT CASE WHEN lease_expires >= {now} THEN lease_owner END, "
            f"CASE WHEN lease_expires >= {now} THEN lease_mode END, lease_expires, {now} "
            f"FROM {j} WHERE job = {p}"
        )
        stamp = self._stamp()
        with self._writing() as conn:
            params = (self.job, owner, float(lease_seconds), wanted, stamp, stamp)
            held = conn.execute(take, params).fetchone() is not None
            holder, held_mode, expires, clock = conn.execute(read, (self.job,)).fetchone()
        if holder is None:
            return LeaseAnswer(held=held, owner=None, mode=None, expires=0.0, seconds_left=0.0)
        return LeaseAnswer(
            held=held,
            owner=holder,
            mode=LeaseMode(held_mode),
            expires=float(expires),
            seconds_left=max(0.0, float(expires) - float(clock)),
        )

    def renew_job_lease(self, owner: str, lease_seconds: float, mode: LeaseMode = LeaseMode.single) -> bool:
        """Extend a live lease the caller holds (single: ``owner``'s; cooperative: the shared
        cooperative lease); False when it expired or another run holds the job."""
        check_positive("lease_seconds", lease_seconds)
        wanted = LeaseMode(mode).value
        p, now = self._PARAM, self._NOW
        sql = f"""
        UPDATE {JOBS} SET
          lease_expires = CASE WHEN lease_expires > {now} + {p} THEN lease_expires ELSE {now} + {p} END,
          lease_owner = {p}
        WHERE job = {p} AND lease_expires >= {now} AND lease_mode = {p}
          AND (lease_owner = {p} OR lease_mode = 'cooperative')
        """
        seconds = float(lease_seconds)
        with self._writing() as conn:
            params = (seconds, seconds, owner, self.job, wanted, owner)
            return conn.execute(sql, params).rowcount == 1

    def release_job_lease(self, owner: str) -> bool:
        """Free the job if ``owner`` holds it in single mode; True if it did. A cooperative
        lease is shared, so no one run frees it: it expires after the last renewal."""
        p = self._PARAM
        sql = (
            f"UPDATE {JOBS} SET lease_owner = NULL, lease_mode = NULL, lease_expires = 0 "
            f"WHERE job = {p} AND lease_owner = {p} AND lease_mode = 'single'"
        )
        with self._writing() as conn:
            return conn.execute(sql, (self.job, owner)).rowcount == 1
