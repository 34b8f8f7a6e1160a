"""Lazy sources of work: a local tree walk for uploads, the remote listing for downloads.

``scan_tree`` walks with ``os.scandir`` one directory at a time and yields files as it goes,
in S3 key order (UTF-8 byte order of the ``/``-joined relative path), so that the upload's
``skip_existing`` check can merge it with the remote listing page by page. Memory is one
directory's names per level of depth, never the whole tree.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from .validation import UnstorableNameError, key_problem, name_problem, shown

logger = logging.getLogger(__name__)

ScanErrorFn = Callable[[str, BaseException], None]


def _ignore(rel: str, exc: BaseException) -> None:
    logger.warning("skipped %s: %s", rel, exc)


def _list_dir(path: str, follow_symlinks: bool) -> list[str]:
    """The regular files and directories in ``path``, sorted, directories as ``name/``.

    The trailing slash both marks a directory and makes it sort the way S3 lists its keys
    (``a-b`` < ``a/x`` < ``a0``). One ``str`` per entry (about 70 bytes for a 20-character
    name): memory follows the largest single directory, never the whole tree. Symlinks are
    left out unless followed; fifos, sockets and devices always are (a fifo would block).
    """
    out: list[str] = []
    append = out.append
    with os.scandir(path) as it:
        for entry in it:
            try:
                if entry.is_symlink() and not follow_symlinks:
                    continue
                if entry.is_dir(follow_symlinks=follow_symlinks):
                    append(entry.name + "/")
                elif entry.is_file(follow_symlinks=follow_symlinks):
                    append(entry.name)
            except OSError:  # a broken link or an entry gone since listing
                continue
    out.sort()
    return out


def scan_tree(
    root: str | os.PathLike[str],
    *,
    follow_symlinks: bool = False,
    on_error: ScanErrorFn | None = None,
    select: Callable[[str], bool] | None = None,
    key_room: int | None = None,
    skip: Callable[[str], bool] | None = None,
) -> Iterator[tuple[str, str, int, int]]:
    """Yield ``(relative path with / separators, OS path, size, mtime_ns)`` for each file.

    Size and modification time (ns) come from the one ``stat`` each file costs anyway: the
    incremental sync compares both with what the tracker recorded when the file was sent.

    Lazy and sorted in key order. A directory that cannot be read, a file that cannot be
    stat'ed or whose path cannot be an S3 key goes to ``on_error(relative path, exc)`` and the
    walk goes on: a path that is not valid UTF-8 or holds a control character is reported in
    its ``shown`` form (``\\xff\\xfe.bin``), and so is everything below such a directory; with
    ``key_room``, a path longer than that many UTF-8 bytes (the room its prefix leaves) too.
    With ``follow_symlinks``, a link back to a directory already on the current path (a loop)
    is reported and not entered, so the walk always ends. ``select(relative path)``, if given,
    picks files before they are stat'ed or reported (include/exclude globs, which so match the
    shown form of an odd name). ``skip(relative path)`` (directories end in ``/``) leaves out
    what must never be uploaded (the tracker's own files, download folders); if it has a
    ``files`` set, only the files in it are offered (one set lookup a file, not a call).
    """
    report = on_error or _ignore
    root = os.fspath(root)
    # Paths shorter than this many characters fit the key room whatever they hold (4 bytes a
    # character at most); files are offered to ``skip`` only when it names them.
    room_chars = sys.maxsize if key_room is None else key_room // 4
    skip_files = getattr(skip, "files", None) if skip is not None else None
    sep = os.sep
    stat = os.stat

    # (directory path ending in the separator, relative prefix ending in "/", iterator over its
    #  entries, identity, why the relative prefix cannot be part of a key, or None)
    stack: list[tuple[str, str, Iterator[str], tuple[int, int] | None, str | None]] = []
    on_path: set[tuple[int, int]] = set()

    def enter(path: str, rel: str, bad: str | None) -> None:
        ident: tuple[int, int] | None = None
        try:
            if follow_symlinks:
                st = stat(path)
                ident = (st.st_dev, st.st_ino)
                if ident in on_path:
                    report(rel, OSError(f"symlink loop: {rel} is an ancestor"))
                    return
            entries = _list_dir(path, follow_symlinks)
        except OSError as exc:
            report(rel, exc)
            return
        if ident is not None:
            on_path.add(ident)
        stack.append((path if path.endswith(sep) else path + sep, rel, iter(entries), ident, bad))

    enter(root, "", None)
    while stack:
        base, rel, entries, ident, bad = stack[-1]
        for name in entries:
            problem = bad or (None if name.isascii() and name.isprintable() else name_problem(name))
            child_rel = rel + (name if problem is None else shown(name))
            if name[-1] == "/":
                if skip is not None and skip(child_rel):
                    continue
                enter(base + name[:-1], child_rel, problem)
                break  # descend; this directory's iterator resumes afterwards
            if skip_files is not None and child_rel in skip_files and skip is not None and skip(child_rel):
                continue
            if select is not None and not select(child_rel):
                continue
            if problem is None and room_chars < len(child_rel):  # may be too long: count bytes
                problem = key_problem(child_rel, key_room)  # type: ignore[arg-type]
            if problem is not None:
                report(child_rel, UnstorableNameError(problem))
                continue
            child = base + name
            try:
                st = stat(child)
            except OSError as exc:
                report(child_rel, exc)
                continue
            yield child_rel, child, st.st_size, st.st_mtime_ns
        else:
            stack.pop()
            if ident is not None:
                on_path.discard(ident)


async def iter_listing(
    s3: Any, bucket: str, prefix: str, page_size: int = 1000, first_page: int | None = None
) -> AsyncIterator[tuple[str, int, str | None]]:
    """``(key, size, etag)`` of every object under ``prefix``, one list call per page (the
    first of ``first_page`` objects when given: see ``Listing.iter_objects``)."""
    async for obj in s3.iter_objects(bucket, prefix=prefix, page_size=page_size, first_page=first_page):
        yield obj["Key"], obj["Size"], obj.get("ETag")
