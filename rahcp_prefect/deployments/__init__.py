"""What deploying rahcp-prefect needs, shipped inside the package.

``prefect.yaml`` defines the deployments (``bulk-upload/default`` and friends); its entrypoints
are modules of the installed package (``rahcp_prefect.flows.upload:bulk_upload``), so a worker
needs ``pip install rahcp-prefect`` and no checkout. ``rahcp-prefect setup`` deploys it.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def prefect_file() -> Path:
    """Path of the packaged ``prefect.yaml`` (a real file: the package is installed unzipped)."""
    return Path(str(files(__name__).joinpath("prefect.yaml")))


__all__ = ["prefect_file"]
