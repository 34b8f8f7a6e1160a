"""``HCPBucket``: one HCP bucket (and a base folder in it) as Prefect storage.

It is Prefect's ``WritableFileSystem`` (result storage: ``read_path``/``write_path``), a
``WritableDeploymentStorage`` (code storage: ``get_directory``/``put_directory``) and an
``ObjectStorageBlock`` (objects and folders to and from paths and file objects), the way
prefect-aws's ``S3Bucket`` is. Every method has an async form named with an ``a`` prefix
(``aread_path``) and a sync form (``read_path``) that dispatches to it when called from async
code (Prefect's ``async_dispatch``), so ``await bucket.read_path(...)`` inside an async flow and
``bucket.read_path(...)`` in a sync one both work.

Writes, copies and moves replace what is there whatever the namespace allows (``S3Ops.write``
and ``copy_over``: the safe replace where HCP refuses overwrites; ``RetentionError`` naming a
retained or held object). Every path is relative to ``bucket_folder`` and may not leave it: ``..`` segments that climb above
it are refused with a ``ValueError``. Folders go through the bulk engine (``rahcp_prefect.bulk``:
presigned in batches, ``workers`` transfers in flight) with a throw-away SQLite tracker, never one
request per file in a loop (``rahcp_prefect.bucket_folders``).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any, BinaryIO

from prefect._internal.compatibility.async_dispatch import async_dispatch
from prefect.blocks.abstract import ObjectStorageBlock
from prefect.filesystems import WritableDeploymentStorage, WritableFileSystem
from prefect.utilities.asyncutils import run_coro_as_sync
from pydantic import Field, PrivateAttr, field_validator

from rahcp_prefect.bucket_folders import FolderTransferError, download_folder, upload_folder
from rahcp_prefect.client import HCPClient
from rahcp_prefect.errors import RahcpError
from rahcp_prefect.setting_blocks import _DOCS_URL, LOGO_URL, HCPCredentials, HCPTransferSettings

__all__ = ["FolderTransferError", "HCPBucket", "PathEscapesBucketFolder"]

_COPY_CHUNK = 1024 * 1024


class PathEscapesBucketFolder(RahcpError, ValueError):
    """A path whose ``..`` segments climb above the block's ``bucket_folder``."""


def _segments(path: str) -> list[str]:
    """The segments of ``path`` with empty and ``.`` ones dropped and ``..`` applied;
    raises ``PathEscapesBucketFolder`` when a ``..`` climbs above the start."""
    kept: list[str] = []
    for segment in str(path).split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if not kept:
                raise PathEscapesBucketFolder(path)
            kept.pop()
        else:
            kept.append(segment)
    return kept


class HCPBucket(WritableFileSystem, WritableDeploymentStorage, ObjectStorageBlock):
    """An HCP bucket, optionally a folder in it, as Prefect result, code and object storage.

    Example:
        Store flow results in HCP and copy a folder there:
        ```python
        from prefect import flow
        from rahcp_prefect.bucket import HCPBucket

        hcp_bucket = HCPBucket.load("BLOCK_NAME")

        @flow(persist_result=True, result_storage=hcp_bucket)
        def nightly() -> dict:
            hcp_bucket.upload_from_folder("reports/", "reports/")
            return {"rows": 42}
        ```
    """

    _block_type_name = "HCP Bucket"
    _documentation_url = _DOCS_URL  # type: ignore[assignment]
    _logo_url = LOGO_URL  # type: ignore[assignment]

    bucket_name: str = Field(title="Bucket name", description="Name of the HCP bucket; it must exist.")
    credentials: HCPCredentials = Field(
        title="Credentials", description="The HCP Credentials block used to reach the bucket."
    )
    bucket_folder: str = Field(
        default="",
        title="Bucket folder",
        description=(
            "Folder inside the bucket that every path is relative to; paths cannot leave it. "
            "Empty means the whole bucket."
        ),
    )
    settings: HCPTransferSettings | None = Field(
        default=None,
        title="Transfer settings",
        description="HCP Transfer Settings for folder transfers and multipart; defaults when empty.",
    )
    # The bearer token of the last login, reused by the next call; never saved with the block.
    _token: str | None = PrivateAttr(default=None)

    @field_validator("bucket_name")
    @classmethod
    def _bucket_given(cls, value: str) -> str:
        if not value or not value.strip():
            raise ValueError("bucket_name must not be empty")
        return value

    @field_validator("bucket_folder")
    @classmethod
    def _plain_folder(cls, value: str) -> str:
        try:
            return "/".join(_segments(value))
        except PathEscapesBucketFolder:
            raise ValueError(f"bucket_folder {value!r} climbs above the bucket with '..'") from None

    @property
    def basepath(self) -> str:
        """The base folder (prefect-aws's name for it)."""
        return self.bucket_folder

    # -- paths -----------------------------------------------------------------------------

    def _resolve_path(self, path: str) -> str:
        """The object key of ``path`` under ``bucket_folder``; refuses a path that leaves it."""
        key = self._join(path)
        if key == self.bucket_folder:
            raise ValueError(f"path {path!r} names no object in {self._where()}")
        return key

    def _resolve_folder(self, folder: str | None) -> str:
        """The key prefix (ending in ``/``, or empty for the whole bucket) of ``folder``."""
        key = self._join(folder or "")
        return f"{key}/" if key else ""

    def _join(self, path: str) -> str:
        """``bucket_folder`` joined with the normalised ``path`` (which may not climb above it)."""
        try:
            segments = _segments(path)
        except PathEscapesBucketFolder:
            raise PathEscapesBucketFolder(
                f"path {path!r} leaves the bucket folder of {self._where()} ('..' climbs above it)"
            ) from None
        return "/".join([self.bucket_folder, *segments] if self.bucket_folder else segments)

    def _where(self) -> str:
        return f"{self.bucket_name}/{self.bucket_folder}" if self.bucket_folder else self.bucket_name

    @asynccontextmanager
    async def _client(self) -> AsyncIterator[HCPClient]:
        """A client for one call; the bearer token of the block's last login is reused (kept in
        memory only), so a run storing many results logs in once, not once per result."""
        client = self.credentials.get_client(self.settings)
        if self._token is not None:
            client.use_token(self._token)
        async with client:
            try:
                yield client
            finally:
                self._token = client.token  # a login after a 401 serves the next call too

    def _settings(self) -> HCPTransferSettings:
        return self.settings or HCPTransferSettings()

    # -- WritableFileSystem: result storage ------------------------------------------------

    async def aread_path(self, path: str) -> bytes:
        """The bytes of the object at ``path`` (``NotFoundError`` when there is none)."""
        key = self._resolve_path(path)
        async with self._client() as client:
            return await client.s3.download_bytes(self.bucket_name, key)

    @async_dispatch(aread_path)
    def read_path(self, path: str) -> bytes:
        """The bytes of the object at ``path`` (``NotFoundError`` when there is none)."""
        return run_coro_as_sync(self.aread_path(path))

    async def awrite_path(self, path: str, content: bytes) -> str:
        """Write ``content`` to ``path`` (replacing it: ``S3Ops.write``); returns the object key."""
        key = self._resolve_path(path)
        async with self._client() as client:
            await client.s3.write(self.bucket_name, key, bytes(content))
        return key

    @async_dispatch(awrite_path)
    def write_path(self, path: str, content: bytes) -> str:
        """Write ``content`` to ``path`` (replacing it); returns the object key."""
        return run_coro_as_sync(self.awrite_path(path, content))

    # -- WritableDeploymentStorage: code storage -------------------------------------------

    async def aget_directory(self, from_path: str | None = None, local_path: str | None = None) -> None:
        """Download the folder ``from_path`` (default: the whole base folder) into
        ``local_path`` (default: the working directory)."""
        await download_folder(
            self._client, self.bucket_name, self._settings(), self._resolve_folder(from_path),
            Path(local_path or ".").expanduser(),
        )

    @async_dispatch(aget_directory)
    def get_directory(self, from_path: str | None = None, local_path: str | None = None) -> None:
        """Download the folder ``from_path`` (default: the whole base folder) into
        ``local_path`` (default: the working directory)."""
        return run_coro_as_sync(self.aget_directory(from_path, local_path))

    async def aput_directory(
        self, local_path: str | None = None, to_path: str | None = None, ignore_file: str | None = None
    ) -> int:
        """Upload the folder ``local_path`` (default: the working directory) to ``to_path``
        (default: the base folder), leaving out what the gitignore-style ``ignore_file``
        matches; returns how many files were uploaded."""
        patterns = Path(ignore_file).read_text().splitlines() if ignore_file else None
        stats = await upload_folder(
            self._client, self.bucket_name, self._settings(), Path(local_path or ".").expanduser(),
            self._resolve_folder(to_path), patterns,
        )
        return stats.ok

    @async_dispatch(aput_directory)
    def put_directory(
        self, local_path: str | None = None, to_path: str | None = None, ignore_file: str | None = None
    ) -> int:
        """Upload the folder ``local_path`` (default: the working directory) to ``to_path``
        (default: the base folder), leaving out what the gitignore-style ``ignore_file``
        matches; returns how many files were uploaded."""
        return run_coro_as_sync(self.aput_directory(local_path, to_path, ignore_file))

    # -- ObjectStorageBlock: objects -------------------------------------------------------

    async def adownload_object_to_path(self, from_path: str, to_path: str | Path, **download_kwargs: Any) -> Path:
        """Download the object at ``from_path`` to the local file ``to_path`` (complete or
        not at all); returns ``to_path``."""
        _no_options("download_object_to_path", download_kwargs)
        key = self._resolve_path(from_path)
        target = Path(to_path).expanduser()
        async with self._client() as client:
            await client.s3.download(self.bucket_name, key, target)
        return target

    @async_dispatch(adownload_object_to_path)
    def download_object_to_path(self, from_path: str, to_path: str | Path, **download_kwargs: Any) -> Path:
        """Download the object at ``from_path`` to the local file ``to_path`` (complete or
        not at all); returns ``to_path``."""
        return run_coro_as_sync(self.adownload_object_to_path(from_path, to_path, **download_kwargs))

    async def adownload_object_to_file_object(
        self, from_path: str, to_file_object: BinaryIO, **download_kwargs: Any
    ) -> BinaryIO:
        """Write the object at ``from_path`` into the open binary ``to_file_object`` (streamed
        through a temporary file, so memory stays bounded); returns ``to_file_object``."""
        _no_options("download_object_to_file_object", download_kwargs)
        with tempfile.TemporaryDirectory(prefix="rahcp-bucket-") as scratch:
            local = await self.adownload_object_to_path(from_path, Path(scratch) / "object")
            with local.open("rb") as source:
                shutil.copyfileobj(source, to_file_object, _COPY_CHUNK)
        return to_file_object

    @async_dispatch(adownload_object_to_file_object)
    def download_object_to_file_object(
        self, from_path: str, to_file_object: BinaryIO, **download_kwargs: Any
    ) -> BinaryIO:
        """Write the object at ``from_path`` into the open binary ``to_file_object`` (streamed
        through a temporary file, so memory stays bounded); returns ``to_file_object``."""
        return run_coro_as_sync(self.adownload_object_to_file_object(from_path, to_file_object, **download_kwargs))

    async def aupload_from_path(self, from_path: str | Path, to_path: str | None = None, **upload_kwargs: Any) -> str:
        """Upload the local file ``from_path`` to ``to_path`` (default: its file name);
        multipart at the settings' threshold. Returns the object key."""
        _no_options("upload_from_path", upload_kwargs)
        source = Path(from_path).expanduser()
        key = self._resolve_path(to_path if to_path is not None else source.name)
        async with self._client() as client:
            await client.s3.write(self.bucket_name, key, source)
        return key

    @async_dispatch(aupload_from_path)
    def upload_from_path(self, from_path: str | Path, to_path: str | None = None, **upload_kwargs: Any) -> str:
        """Upload the local file ``from_path`` to ``to_path`` (default: its file name);
        multipart at the settings' threshold. Returns the object key."""
        return run_coro_as_sync(self.aupload_from_path(from_path, to_path, **upload_kwargs))

    async def aupload_from_file_object(self, from_file_object: IO[bytes], to_path: str, **upload_kwargs: Any) -> str:
        """Upload what is left to read in the binary ``from_file_object`` to ``to_path``
        (spooled to a temporary file, so a large stream goes multipart). Returns the key."""
        _no_options("upload_from_file_object", upload_kwargs)
        self._resolve_path(to_path)  # a bad path fails before the stream is read
        with tempfile.TemporaryDirectory(prefix="rahcp-bucket-") as scratch:
            local = Path(scratch) / "object"
            with local.open("wb") as spool:
                shutil.copyfileobj(from_file_object, spool, _COPY_CHUNK)
            return await self.aupload_from_path(local, to_path)

    @async_dispatch(aupload_from_file_object)
    def upload_from_file_object(self, from_file_object: IO[bytes], to_path: str, **upload_kwargs: Any) -> str:
        """Upload what is left to read in the binary ``from_file_object`` to ``to_path``
        (spooled to a temporary file, so a large stream goes multipart). Returns the key."""
        return run_coro_as_sync(self.aupload_from_file_object(from_file_object, to_path, **upload_kwargs))

    # -- ObjectStorageBlock: folders (through the bulk engine) -----------------------------

    async def adownload_folder_to_path(
        self, from_folder: str, to_folder: str | Path, **download_kwargs: Any
    ) -> Path:
        """Download every object under the folder ``from_folder`` into ``to_folder`` (the
        folder's name stripped from the paths); returns ``to_folder``."""
        _no_options("download_folder_to_path", download_kwargs)
        target = Path(to_folder).expanduser()
        await download_folder(self._client, self.bucket_name, self._settings(), self._resolve_folder(from_folder), target)
        return target

    @async_dispatch(adownload_folder_to_path)
    def download_folder_to_path(self, from_folder: str, to_folder: str | Path, **download_kwargs: Any) -> Path:
        """Download every object under the folder ``from_folder`` into ``to_folder`` (the
        folder's name stripped from the paths); returns ``to_folder``."""
        return run_coro_as_sync(self.adownload_folder_to_path(from_folder, to_folder, **download_kwargs))

    async def aupload_from_folder(
        self,
        from_folder: str | Path,
        to_folder: str | None = None,
        *,
        ignore_patterns: list[str] | None = None,
        **upload_kwargs: Any,
    ) -> str:
        """Upload every file under ``from_folder`` to the folder ``to_folder`` (default: the
        base folder), minus what the gitignore-style ``ignore_patterns`` match. Returns the
        key prefix the files went under."""
        _no_options("upload_from_folder", upload_kwargs)
        prefix = self._resolve_folder(to_folder)
        await upload_folder(
            self._client, self.bucket_name, self._settings(), Path(from_folder).expanduser(), prefix, ignore_patterns
        )
        return prefix

    @async_dispatch(aupload_from_folder)
    def upload_from_folder(
        self,
        from_folder: str | Path,
        to_folder: str | None = None,
        *,
        ignore_patterns: list[str] | None = None,
        **upload_kwargs: Any,
    ) -> str:
        """Upload every file under ``from_folder`` to the folder ``to_folder`` (default: the
        base folder), minus what the gitignore-style ``ignore_patterns`` match. Returns the
        key prefix the files went under."""
        return run_coro_as_sync(
            self.aupload_from_folder(from_folder, to_folder, ignore_patterns=ignore_patterns, **upload_kwargs)
        )

    # -- listing, copy, move, delete -------------------------------------------------------

    async def alist_objects(self, folder: str = "", max_items: int | None = None) -> list[dict[str, Any]]:
        """The objects under ``folder`` (``Key`` is the full key in the bucket, with ``Size``,
        ``ETag``, ``LastModified``), every page, at most ``max_items``."""
        found: list[dict[str, Any]] = []
        prefix = self._resolve_folder(folder)
        if max_items is not None and max_items < 1:
            return found
        async with self._client() as client:
            async for item in client.s3.iter_objects(self.bucket_name, prefix=prefix):
                found.append(item)
                if max_items is not None and len(found) >= max_items:
                    break
        return found

    @async_dispatch(alist_objects)
    def list_objects(self, folder: str = "", max_items: int | None = None) -> list[dict[str, Any]]:
        """The objects under ``folder`` (``Key`` is the full key in the bucket, with ``Size``,
        ``ETag``, ``LastModified``), every page, at most ``max_items``."""
        return run_coro_as_sync(self.alist_objects(folder, max_items))

    async def acopy_object(self, from_path: str, to_path: str, to_bucket: HCPBucket | str | None = None) -> str:
        """Server-side copy of ``from_path`` to ``to_path`` in this bucket, or in ``to_bucket``
        (an ``HCPBucket``: under its folder; a bucket name: ``to_path`` is the key there).
        Returns the destination key."""
        source = self._resolve_path(from_path)
        dest_bucket, dest_key = self._destination(to_path, to_bucket)
        async with self._client() as client:
            await client.s3.copy_over(dest_bucket, dest_key, self.bucket_name, source)
        return dest_key

    @async_dispatch(acopy_object)
    def copy_object(self, from_path: str, to_path: str, to_bucket: HCPBucket | str | None = None) -> str:
        """Server-side copy of ``from_path`` to ``to_path`` in this bucket, or in ``to_bucket``
        (an ``HCPBucket``: under its folder; a bucket name: ``to_path`` is the key there).
        Returns the destination key."""
        return run_coro_as_sync(self.acopy_object(from_path, to_path, to_bucket))

    async def amove_object(self, from_path: str, to_path: str, to_bucket: HCPBucket | str | None = None) -> str:
        """Copy ``from_path`` to ``to_path`` (as ``copy_object``), then delete the source.
        Returns the destination key."""
        source = self._resolve_path(from_path)
        dest_bucket, dest_key = self._destination(to_path, to_bucket)
        if (dest_bucket, dest_key) == (self.bucket_name, source):
            return dest_key  # moving onto itself: deleting the source would lose the object
        async with self._client() as client:
            await client.s3.copy_over(dest_bucket, dest_key, self.bucket_name, source)
            await client.s3.delete(self.bucket_name, source)
        return dest_key

    @async_dispatch(amove_object)
    def move_object(self, from_path: str, to_path: str, to_bucket: HCPBucket | str | None = None) -> str:
        """Copy ``from_path`` to ``to_path`` (as ``copy_object``), then delete the source.
        Returns the destination key."""
        return run_coro_as_sync(self.amove_object(from_path, to_path, to_bucket))

    async def adelete_object(self, path: str) -> None:
        """Delete the object at ``path`` (a missing object is not an error)."""
        key = self._resolve_path(path)
        async with self._client() as client:
            await client.s3.delete(self.bucket_name, key)

    @async_dispatch(adelete_object)
    def delete_object(self, path: str) -> None:
        """Delete the object at ``path`` (a missing object is not an error)."""
        return run_coro_as_sync(self.adelete_object(path))

    # -- helpers ---------------------------------------------------------------------------

    def _destination(self, to_path: str, to_bucket: HCPBucket | str | None) -> tuple[str, str]:
        if to_bucket is None:
            return self.bucket_name, self._resolve_path(to_path)
        if isinstance(to_bucket, HCPBucket):
            return to_bucket.bucket_name, to_bucket._resolve_path(to_path)
        key = "/".join(_segments(to_path)) if to_path else ""
        if not key:
            raise ValueError(f"to_path {to_path!r} names no object in bucket {to_bucket}")
        return to_bucket, key


def _no_options(method: str, options: dict[str, Any]) -> None:
    """The ``**kwargs`` of Prefect's abstract signatures: refuse rather than ignore them."""
    if options:
        raise TypeError(f"HCPBucket.{method} takes no extra options, got {', '.join(sorted(options))}")
