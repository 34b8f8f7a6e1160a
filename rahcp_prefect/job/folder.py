"""A download's staging folder: where its files wait beside the destination until all arrived.

The folder is the destination's hidden sibling ``.<name>.rahcp-staging`` (named in
``bulk/exclusions.py``, which keeps uploads out of it), on the same filesystem, so the
promotion into the destination is a rename per file.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from rahcp_prefect import interrupts
from rahcp_prefect.bulk.exclusions import download_staging
from rahcp_prefect.bulk.paths import TEMP_PREFIX

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
    (the destination holds a folder of its name, say) never keeps the others out. Temporary
    ``.rahcp-part.*`` files of interrupted downloads are never moved. A stop signal
    (``rahcp_prefect.interrupts``) ends the move between two files with ``Interrupted``: what
    was not moved stays in staging, and the next run of the job moves it.
    """
    done = Promotion()
    for root, dirs, files in os.walk(staging):
        relative = Path(root).relative_to(staging)
        target_dir = dest / relative
        try:
            target_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            done.unplaced.append((relative.as_posix(), f"{type(exc).__name__}: {exc.strerror or exc}"))
            dirs[:] = []  # nothing below a folder that cannot be made can be placed
            continue
        for name in files:
            if name.startswith(TEMP_PREFIX):
                continue
            interrupts.check()  # a stop signal ends the move here: the rest waits in staging
            try:
                os.replace(os.path.join(root, name), target_dir / name)
            except OSError as exc:
                done.unplaced.append(((relative / name).as_posix(), f"{type(exc).__name__}: {exc.strerror or exc}"))
                continue
            done.moved += 1
    shutil.rmtree(staging, ignore_errors=True)
    return done
