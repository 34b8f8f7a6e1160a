"""The part store of multipart uploads (the SDK's ``PartStore``), written once for both backends:
which upload a key has under way and which of its parts were acknowledged, so a rerun resumes."""

from __future__ import annotations

from typing import Any

from rahcp_prefect.client.resume import RecordedPart, RecordedUpload
from rahcp_prefect.tracker.checks import check_key
from rahcp_prefect.tracker.marks import MarkBuffer
from rahcp_prefect.tracker.tables import PARTS, UPLOADS


class PartRecords(MarkBuffer):
    """``recorded_upload``, ``record_upload``, ``record_part``, ``forget_upload``."""

    def recorded_upload(self, bucket: str, key: str) -> RecordedUpload | None:
        """The unfinished multipart upload recorded for ``bucket/key`` in this job, or None."""
        rows = self._select(
            f'SELECT upload_id, part_size, size, mtime_ns FROM {UPLOADS} '
            'WHERE job = {p} AND "key" = {p} AND bucket = {p}',
            self.job, key, bucket,
        )
        if not rows:
            return None
        upload_id, part_size, size, mtime_ns = rows[0]
        parts = self._select(
            f'SELECT part_number, etag, md5 FROM {PARTS} WHERE job = {{p}} AND "key" = {{p}} AND upload_id = {{p}}',
            self.job, key, upload_id,
        )
        return RecordedUpload(
            upload_id=upload_id, part_size=int(part_size), size=int(size), mtime_ns=int(mtime_ns),
            parts={int(number): RecordedPart(etag, md5) for number, etag, md5 in parts},
        )

    def record_upload(
        self, bucket: str, key: str, upload_id: str, part_size: int, size: int, mtime_ns: int
    ) -> None:
        """A new multipart upload of ``bucket/key``: replaces any earlier record and its parts."""
        check_key(key)
        p = self._PARAM
        with self._writing() as conn:
            self._drop_upload(conn, key)
            conn.execute(
                f'INSERT INTO {UPLOADS} (job, "key", bucket, upload_id, part_size, size, mtime_ns, updated_at) '
                f"VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})",
                (self.job, key, bucket, upload_id, part_size, size, mtime_ns, self._stamp()),
            )

    def record_part(self, bucket: str, key: str, upload_id: str, number: int, etag: str, md5: str) -> None:
        """Part ``number`` of ``upload_id`` was acknowledged with ``etag`` (bytes hashing to ``md5``)."""
        p = self._PARAM
        with self._writing() as conn:
            conn.execute(
                f'INSERT INTO {PARTS} (job, "key", part_number, upload_id, etag, md5) '
                f"VALUES ({p}, {p}, {p}, {p}, {p}, {p}) "
                'ON CONFLICT (job, "key", part_number) DO UPDATE SET upload_id = excluded.upload_id, '
                "etag = excluded.etag, md5 = excluded.md5",
                (self.job, key, number, upload_id, etag, md5),
            )

    def _drop_upload(self, conn: Any, key: str) -> None:
        p = self._PARAM
        conn.execute(f'DELETE FROM {PARTS} WHERE job = {p} AND "key" = {p}', (self.job, key))
        conn.execute(f'DELETE FROM {UPLOADS} WHERE job = {p} AND "key" = {p}', (self.job, key))

    def forget_upload(self, bucket: str, key: str) -> None:
        """The upload of ``bucket/key`` completed or was aborted: drop its record and parts."""
        with self._writing() as conn:
            self._drop_upload(conn, key)
