"""What is never uploaded from inside ``source_dir``, whatever the include patterns say.

The tracker's own SQLite files (the database and its ``-wal``, ``-shm`` and ``-journal``
companions) change while the run reads them: uploaded, they would be a torn copy in the
archive. A download destination inside the source, and its staging folder
``.<name>.rahcp-staging``, hold what came from the bucket: the next upload would send it back.
Both are left out of the walk, with one warning per kind, never one per file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .validation import key_room

logger = logging.getLogger(__name__)

STAGING_SUFFIX = ".rahcp-staging"
"""A download's staging folder is its destination's hidden sibling ``.<name>.rahcp-staging``."""
TRACKER_SUFFIXES = ("", "-wal", "-shm", "-journal")
"""The files of one SQLite database."""

TRACKER_FILE = "the tracker's own file"
DOWNLOAD_DEST = "a download destination"
DOWNLOAD_STAGING = "a download staging folder"


def download_staging(dest: Path) -> Path:
    """The staging folder of the download destination ``dest``: a hidden sibling."""
    return dest.parent / f".{dest.name}{STAGING_SUFFIX}"


def _download_dest(staging: str | None) -> Path | None:
    """The destination whose staging folder is ``staging`` (a download job's staging), or None."""
    if not staging or not os.path.isabs(staging):
        return None
    path = Path(staging)
    name = path.name
    if not is_staging_name(name):
        return None
    return path.parent / name[1 : -len(STAGING_SUFFIX)]


def is_staging_name(name: str) -> bool:
    """Whether a folder called ``name`` is named like a download staging folder (``.<x>.rahcp-staging``)."""
    return name.startswith(".") and name.endswith(STAGING_SUFFIX) and len(name) > len(STAGING_SUFFIX) + 1


def _is_staging_dir(rel: str) -> bool:
    """Whether ``rel`` (a directory, ending in ``/``) is named like a download staging folder."""
    return is_staging_name(rel[:-1].rpartition("/")[2])


class NeverUpload:
    """``skip(rel)`` for ``scan_tree``: True for what must not be uploaded, warning once per kind."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        tracker_files: Iterable[str | os.PathLike[str]] = (),
        download_dests: Iterable[str | os.PathLike[str]] = (),
        warn: Callable[[str], Any] | None = None,
    ) -> None:
        self._root = os.path.realpath(root)
        self._warn = warn or logger.warning
        self._warned: set[str] = set()
        self._rels: dict[str, str] = {}
        for path in tracker_files:
            rel = self._inside(path)
            if rel:
                self._rels[rel] = TRACKER_FILE
        for dest in download_dests:
            for path, kind in ((Path(dest), DOWNLOAD_DEST), (download_staging(Path(dest)), DOWNLOAD_STAGING)):
                rel = self._inside(path)
                if rel:
                    self._rels[rel + "/"] = kind
        self.files = frozenset(rel for rel in self._rels if not rel.endswith("/"))
        """The files it leaves out: ``scan_tree`` offers it only these (one set lookup a file)."""

    @classmethod
    def for_tracker(
        cls, root: str | os.PathLike[str], tracker: Any, warn: Callable[[str], Any] | None = None
    ) -> NeverUpload:
        """What not to upload from ``root`` given the run's tracker: its SQLite files, and the
        destinations of the download jobs it records."""
        path = getattr(tracker, "path", None)
        files = [f"{path}{suffix}" for suffix in TRACKER_SUFFIXES] if path and str(path) != ":memory:" else []
        dests = [dest for info in tracker.list_jobs() if (dest := _download_dest(info.staging_prefix))]
        return cls(root, files, dests, warn)

    def _inside(self, path: str | os.PathLike[str]) -> str | None:
        """``path`` relative to the root with ``/`` separators, if it lies below it."""
        real = os.path.realpath(path)
        if not real.startswith(self._root.rstrip(os.sep) + os.sep):
            return None
        return os.path.relpath(real, self._root).replace(os.sep, "/")

    def __call__(self, rel: str) -> bool:
        kind = self._rels.get(rel)
        if kind is None:
            if not (rel.endswith(STAGING_SUFFIX + "/") and _is_staging_dir(rel)):
                return False
            kind = DOWNLOAD_STAGING
        if kind not in self._warned:
            self._warned.add(kind)
            self._warn(f"Not uploaded: {rel} inside source_dir is {kind} (further ones are skipped without a warning)")
        return True


@dataclass(frozen=True)
class SourceGuard:
    """How a flow walks ``source_dir``: what it leaves out (``skip``) and the bytes a file path
    may take (``key_room``: S3's 1,024 less the longer of the staging and final prefixes)."""

    skip: NeverUpload
    key_room: int

    @classmethod
    def for_run(
        cls,
        source: str | os.PathLike[str],
        tracker: Any,
        final_prefix: str,
        staging_prefix: str,
        warn: Callable[[str], Any] | None = None,
    ) -> SourceGuard:
        return cls(NeverUpload.for_tracker(source, tracker, warn), key_room(final_prefix, staging_prefix))

    def scan_options(self) -> dict[str, Any]:
        """The ``scan_tree`` keyword arguments of this guard."""
        return {"skip": self.skip, "key_room": self.key_room}
