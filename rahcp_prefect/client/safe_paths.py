"""Local writes that never follow a symbolic link below the folder they go to.

A download destination may hold links someone else made (``dest/sub -> /elsewhere``), or made
during the run: a file written through one would land outside the destination. So every folder
below the destination is opened relative to its parent's file descriptor with ``O_NOFOLLOW``
(``open_dir``), files are created relative to their folder's descriptor with ``O_NOFOLLOW`` and
``O_EXCL`` (``create_file``), and renames go between descriptors (``os.replace`` with
``src_dir_fd``/``dst_dir_fd``). A link put in place of a folder at any moment is refused
(``LinkRefusedError``), never followed: a look before writing would not hold against a race.

The destination itself is opened once, following a link (``open_root``): the user chose it. A
folder of our own beside it (a download's staging folder) is opened with ``link_ok=False``.
POSIX only (``dir_fd``, ``O_NOFOLLOW``), like the ranged downloads' ``pwrite``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Sequence

from rahcp_prefect.errors import RahcpError

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC
"""A folder below the destination: never through a link."""
FILE_FLAGS = os.O_NOFOLLOW | _CLOEXEC
"""Added to every file open: the file itself is never a link."""
_NEW_FILE = os.O_CREAT | os.O_EXCL | FILE_FLAGS | getattr(os, "O_BINARY", 0)


class LinkRefusedError(RahcpError, OSError):
    """A path below a download destination goes through a symbolic link: never followed."""

    def __init__(self, rel: str, link: str) -> None:
        self.link = link
        super().__init__(
            f"refused {rel!r}: {link!r} is a symbolic link in the destination (downloads never follow one)"
        )


def is_link(name: str, dir_fd: int | None) -> bool:
    """Whether ``name`` (relative to ``dir_fd``) is a symbolic link; False when it is absent."""
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _refused(exc: OSError, name: str, dir_fd: int | None, rel: str, link: str) -> OSError:
    """``LinkRefusedError`` when ``name`` is a link (``O_NOFOLLOW`` answers ELOOP or ENOTDIR),
    else ``exc`` itself."""
    if exc.errno in (errno.ELOOP, errno.ENOTDIR) and is_link(name, dir_fd):
        return LinkRefusedError(rel, link)
    return exc


def open_root(path: str | os.PathLike[str], *, link_ok: bool = True, create: bool = True) -> int:
    """A descriptor of the folder ``path`` (made when ``create``). ``link_ok``: ``path`` may be
    a link (the destination the user chose); else only its parent may (a folder of ours)."""
    path = os.fspath(path)
    if link_ok:
        if create:
            os.makedirs(path, exist_ok=True)
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)
    parent, name = os.path.split(os.path.abspath(path))
    if create:
        os.makedirs(parent, exist_ok=True)
    parent_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)
    try:
        return open_dir(parent_fd, [name], create=create, rel=name)
    finally:
        os.close(parent_fd)


def open_dir(root: int, parts: Sequence[str], *, create: bool = True, rel: str | None = None) -> int:
    """A new descriptor of the folder ``parts`` below ``root`` (each made when missing and
    ``create``), every component opened without following a link (``LinkRefusedError`` names
    the first that is one, in ``rel``, the path being written). The caller closes it."""
    fd = os.dup(root) if not parts else root
    for index, part in enumerate(parts):
        try:
            try:
                child = os.open(part, DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, dir_fd=fd)
                child = os.open(part, DIR_FLAGS, dir_fd=fd)
        except OSError as exc:
            raise _refused(exc, part, fd, rel or "/".join(parts), "/".join(parts[: index + 1])) from None
        finally:
            if fd != root:
                os.close(fd)
        fd = child
    return fd


def create_file(name: str, dir_fd: int | None, *, flags: int = os.O_WRONLY, mode: int = 0o666) -> int:
    """A new file ``name`` in ``dir_fd`` opened with ``flags`` (its access mode and more): never
    through a link, never into an existing file (a leftover of that name is removed first)."""
    try:
        return os.open(name, _NEW_FILE | flags, mode, dir_fd=dir_fd)
    except FileExistsError:
        os.unlink(name, dir_fd=dir_fd)
        return os.open(name, _NEW_FILE | flags, mode, dir_fd=dir_fd)


def open_own(name: str, flags: int, dir_fd: int | None, *, mode: int = 0o666) -> int:
    """``name`` in ``dir_fd`` opened with ``flags``, never through a link, and refused when it
    is a hard link too (a file of ours to resume, such as a ranged download's part file)."""
    fd = os.open(name, flags | FILE_FLAGS, mode, dir_fd=dir_fd)
    if os.fstat(fd).st_nlink > 1:
        os.close(fd)
        raise OSError(errno.EMLINK, f"refused {name!r}: it has other hard links")
    return fd


def unlink(name: str, dir_fd: int | None) -> None:
    """Remove ``name`` from ``dir_fd`` (a link itself, never its target); absent is fine."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dir_fd)


def file_state(name: str, dir_fd: int) -> tuple[int, int] | None:
    """``(size, mtime_ns)`` of the regular file ``name`` in ``dir_fd``; None when it is absent,
    a link or not a file."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except (OSError, ValueError):
        return None
    return (st.st_size, st.st_mtime_ns) if stat.S_ISREG(st.st_mode) else None


class FileFolder:
    """The folder the file ``parts`` (below ``root``) goes in: opened (made, never through a
    link) when first needed, and held until the file is in place, so its temporary name and
    its final one are in the very folder that was checked. ``close()`` when done."""

    def __init__(self, root: int, parts: Sequence[str]) -> None:
        self.root = root
        self.parts = parts
        self.fd: int | None = root if len(parts) == 1 else None

    @property
    def name(self) -> str:
        return self.parts[-1]

    def open(self) -> int:
        if self.fd is None:
            self.fd = open_dir(self.root, self.parts[:-1], rel="/".join(self.parts))
        return self.fd

    def close(self) -> None:
        if self.fd is not None and self.fd != self.root:
            os.close(self.fd)
        self.fd = None


class TreeStates:
    """``state(parts)``: ``(size, mtime_ns)`` of the file ``parts`` below the folder ``root``
    (a descriptor), reached without following a link (a file behind one is not there), and
    ``link(parts)``: the link in the way of its folder, if any; asked in key order, so the last
    folder stays open. ``None``: no folder, nothing is in it. Close it (a context manager);
    ``owns_root`` closes ``root`` too."""

    def __init__(self, root: int | None, *, owns_root: bool = False) -> None:
        self._root = root
        self._owns_root = owns_root
        self._folder: tuple[str, ...] | None = None
        self._fd: int | None = None
        self._link: str | None = None

    @classmethod
    def at(cls, path: str | os.PathLike[str], *, link_ok: bool = True) -> TreeStates:
        """The states below the folder ``path`` (absent: nothing is in it)."""
        try:
            return cls(open_root(path, link_ok=link_ok, create=False), owns_root=True)
        except OSError:
            return cls(None)

    def state(self, parts: Sequence[str]) -> tuple[int, int] | None:
        self._enter(parts)
        return file_state(parts[-1], self._fd) if self._fd is not None else None

    def link(self, parts: Sequence[str]) -> str | None:
        """The folder of ``parts`` that is a symbolic link (``a/b``), None when none is."""
        self._enter(parts)
        return self._link

    def _enter(self, parts: Sequence[str]) -> None:
        folder = tuple(parts[:-1])
        if folder == self._folder or self._root is None:
            return
        self._close_folder()
        self._folder, self._link = folder, None
        try:
            self._fd = open_dir(self._root, folder, create=False)
        except LinkRefusedError as exc:
            self._link = exc.link
        except OSError:
            pass

    def _close_folder(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None

    def close(self) -> None:
        self._close_folder()
        if self._root is not None and self._owns_root:
            os.close(self._root)
        self._root = None

    def __enter__(self) -> TreeStates:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
