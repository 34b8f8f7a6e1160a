"""A download's staging folder: where its files wait beside the destination until all arrived.

The folder is the destination's hidden sibling ``.<name>.rahcp-staging`` (named in
``bulk/exclusions.py``, which keeps uploads out of it), on the same filesystem, so the
promotion into the destination is a rename per file. The promotion never follows a symbolic
link: neither the staging folder nor any folder below the destination is opened through one
(``client.safe_paths``), and each file is renamed between the two folders' descriptors, so a
link made during the run is refused too. The destination itself may be a link (the user chose it).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rahcp_prefect import interrupts
from rahcp_prefect.bulk.exclusions import download_staging
from rahcp_prefect.bulk.paths import TEMP_PREFIX
from rahcp_prefect.client.safe_paths import open_dir, open_root

staging_dir_for = download_staging
"""The staging folder of a download destination ``dest``: a hidden sibling."""


@dataclass
class Promotion:
    """What the move into the destination did: files moved, and those it could not place."""

    moved: int = 0
    unplaced: list[tuple[str, str]] = field(default_factory=list)  # (path relative to dest, reason)


def promote_staging(staging: Path, dest: Path) -> Promotion:
    """Move every complete file and folder of ``staging`` into ``dest`` (replacing files), then
    drop staging; a file or folder that cannot be placed is reported, not raised.

    ``os.replace`` on one filesystem keeps a file's restored mtime; every folder of staging is
    made in the destination (empty ones too: folder markers); one file that cannot be placed
    (the destination holds a folder of its name, or a link in place of one of its folders) never
    keeps the others out, and each file below a folder that cannot be placed is named. Temporary
    ``.rahcp-part.*`` files of interrupted downloads are never moved. A stop signal
    (``rahcp_prefect.interrupts``) ends the move between two files with ``Interrupted``: what
    was not moved stays in staging, and the next run of the job moves it.
    """
    done = Promotion()
    staged = open_root(staging, link_ok=False, create=False)
    try:
        target = open_root(dest)
        try:
            pending: list[tuple[str, ...]] = [()]
            while pending:
                pending += reversed(_promote_folder(staged, target, pending.pop(), done))
        finally:
            os.close(target)
    finally:
        os.close(staged)
    shutil.rmtree(staging, ignore_errors=True)
    return done


def _promote_folder(staged: int, target: int, parts: tuple[str, ...], done: Promotion) -> list[tuple[str, ...]]:
    """Move the files of the staging folder ``parts`` into the destination's; returns its
    subfolders, in name order."""
    rel = "/".join(parts)
    source = open_dir(staged, parts, create=False)
    try:
        try:
            folder = open_dir(target, parts, rel=rel)
        except OSError as exc:  # a file or a link in the destination where the folder goes
            reason = _reason(exc)
            done.unplaced += [(path, reason) for path in _files_below(source, parts)] or [(rel, reason)]
            return []
        try:
            return _move_files(source, folder, parts, done)
        finally:
            os.close(folder)
    finally:
        os.close(source)


def _move_files(source: int, folder: int, parts: tuple[str, ...], done: Promotion) -> list[tuple[str, ...]]:
    subfolders = []
    with os.scandir(source) as scan:
        entries = sorted(scan, key=lambda entry: entry.name)
    for entry in entries:
        name = entry.name
        if entry.is_dir(follow_symlinks=False):
            subfolders.append((*parts, name))
        elif name.startswith(TEMP_PREFIX):
            continue
        elif not entry.is_file(follow_symlinks=False):
            done.unplaced.append((_join(parts, name), f"refused: {name!r} in the staging folder is not a file (a link?)"))
        else:
            interrupts.check()  # a stop signal ends the move here: the rest waits in staging
            try:
                os.replace(name, name, src_dir_fd=source, dst_dir_fd=folder)
            except OSError as exc:
                done.unplaced.append((_join(parts, name), _reason(exc)))
                continue
            done.moved += 1
    return subfolders


def _files_below(source: int, parts: Sequence[str]) -> list[str]:
    """The files (relative to the destination) below the staging folder ``source``."""
    found = []
    for root, _dirs, files, _fd in os.fwalk(".", dir_fd=source):
        below = [] if root == "." else root[2:].split(os.sep)
        found += [_join((*parts, *below), name) for name in sorted(files) if not name.startswith(TEMP_PREFIX)]
    return found


def _join(parts: Sequence[str], name: str) -> str:
    return "/".join((*parts, name))


def _reason(exc: OSError) -> str:
    return f"{type(exc).__name__}: {exc.strerror or exc}"
