"""Tag files (a manifest, the times) of any size in flat memory: written line by line to a local
file, read line by line from one, sent and read back by their digests.

A commit's manifest of ten million files is about a gigabyte: it is never one string. The
commit writes each line to a temporary file as the merge produces it (``TagWriter``: MD5 and
SHA-256 kept as it goes), uploads the file (multipart above the client's threshold), and checks
the read-back by its SHA-256; a reader downloads a tag file to disk and walks its lines in path
order (``read_sorted``), one line in memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

from rahcp_prefect.client import HCPClient, NotFoundError
from rahcp_prefect.job.manifest import ManifestError, decode_path, encode_path, numbered_lines

T = TypeVar("T")

#: Renders one line of a tag file: ``(path, value) -> line``.
LineRenderer = Callable[[str, T], str]
#: Parses one line of a tag file: ``(line, where, number) -> (path, value)``.
LineParser = Callable[[str, str, int], tuple[str, T]]


class TagWriter(Generic[T]):
    """One tag file written line by line, in path order, to ``path`` on local disk; its size,
    MD5 (an upload's ETag), SHA-256 (the read-back's check) and line count kept as it goes."""

    def __init__(self, path: Path, render: LineRenderer[T]) -> None:
        self.path, self._render = path, render
        self._file = path.open("wb")
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._sha256 = hashlib.sha256()
        self._last: str | None = None
        self.lines = 0

    def add(self, path: str, value: T) -> None:
        """Append the line of ``path``; paths must come in ascending order, each once."""
        if self._last is not None and path <= self._last:
            raise ValueError(f"tag file lines out of order: {path!r} after {self._last!r}")
        self._last = path
        data = self._render(path, value).encode("utf-8")
        self._file.write(data)
        self._md5.update(data)
        self._sha256.update(data)
        self.lines += 1

    def close(self) -> None:
        self._file.close()

    @property
    def md5(self) -> str:
        return self._md5.hexdigest()

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()


def read_sorted(path: Path, parse: LineParser[T], where: str) -> Iterator[tuple[str, T]]:
    """``(path, value)`` of every line of the tag file at ``path`` on local disk, in order;
    ``ManifestError`` names a bad line, a path listed twice or out of order (a stream in path
    order is what lets readers merge records without holding them)."""
    last: str | None = None
    with path.open("rb") as stream:
        for number, line in numbered_lines(stream, where):
            key, value = parse(line, where, number)
            if last is not None and key <= last:
                problem = "lists it twice" if key == last else f"is not sorted by path (after {last!r})"
                raise ManifestError(f"{where} line {number}: {key!r} {problem}")
            last = key
            yield key, value


def file_sha256(path: Path) -> str:
    """The SHA-256 of a local file, read a megabyte at a time."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


async def fetch(client: HCPClient, bucket: str, key: str, dest: Path) -> bool:
    """Download ``bucket/key`` to ``dest``; False when there is no such object."""
    try:
        await client.s3.download(bucket, key, dest)
    except NotFoundError:
        return False
    return True


async def read_back_differs(client: HCPClient, bucket: str, key: str, written: TagWriter[Any], scratch: Path) -> str | None:
    """Read ``key`` back to ``scratch`` and compare it with what ``written`` wrote by SHA-256:
    None when it is the same, else what is wrong (missing, other bytes)."""
    try:
        if not await fetch(client, bucket, key, scratch):
            return f"{bucket}/{key}: missing"
        return None if file_sha256(scratch) == written.sha256 else f"{bucket}/{key}: read back, not what the commit wrote"
    finally:
        scratch.unlink(missing_ok=True)


class ListingSpool:
    """A listing kept on local disk as it is read: ``(key, ETag)`` lines in the listing's order,
    so a later phase walks the same listing again without listing the prefix twice (the final
    check reads it, the commit's record merges it). ``reset`` before each read of the listing."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: Any = None

    def reset(self) -> None:
        self.close()
        self._file = self.path.open("w", encoding="utf-8", newline="\n")

    def add(self, key: str, etag: str) -> None:
        self._file.write(f"{etag or '-'} {encode_path(key)}\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        """``(key, ETag)`` of every object listed, in the listing's order."""
        self.close()
        with self.path.open("r", encoding="utf-8", newline="\n") as lines:
            for line in lines:
                etag, key = line.rstrip("\n").split(" ", 1)
                yield decode_path(key), "" if etag == "-" else etag
