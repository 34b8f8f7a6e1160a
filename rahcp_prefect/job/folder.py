"""A download's staging folder: where its files wait beside the destination until all arrived.

The folder is the destination's hidden sibling ``.<name>.rahcp-staging`` (named in
``bulk/exclusions.py``, which keeps uploads out of it), on the same filesystem, so the
promotion into the destination is a rename per file.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from rahcp_prefect.bulk.exclusions import download_staging
from rahcp_prefect.bulk.paths import TEMP_PREFIX

staging_dir_for = download_staging
"""The staging folder of a download destination ``dest``: a hidden sibling."""


def promote_staging(staging: Path, dest: Path) -> int:
    """Move every complete file from ``staging`` into ``dest`` (replacing), then drop staging.

    Temporary ``.rahcp-part.*`` files of interrupted downloads are never moved.
    Returns how many files moved.
    """
    moved = 0
    for root, _dirs, files in os.walk(staging):
        target_dir = dest / Path(root).relative_to(staging)
        for name in files:
            if name.startswith(TEMP_PREFIX):
                continue
            target_dir.mkdir(parents=True, exist_ok=True)
            os.replace(os.path.join(root, name), target_dir / name)
            moved += 1
    shutil.rmtree(staging, ignore_errors=True)
    return moved
