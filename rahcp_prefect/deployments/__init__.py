"""What deploying rahcp-prefect needs: the deployment file's path and the ``prefect.yaml`` steps.

The one deployment file is ``deployments/prefect.yaml`` at the top of the checkout; the build
(``setup.py``) ships it inside the wheel as ``rahcp_prefect/deployments/prefect.yaml``. It
defines the deployments (``bulk-upload/default`` and friends); their entrypoints are modules of
the installed package (``rahcp_prefect.flows.upload:bulk_upload``), so a worker needs
the package installed (e.g. the wheel built from a checkout) and no checkout. ``rahcp-prefect setup`` deploys it.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

FILE_NAME = "prefect.yaml"


def checkout_prefect_file() -> Path:
    """Where the deployment file sits in a checkout: ``<checkout>/deployments/prefect.yaml``."""
    return Path(__file__).resolve().parents[2] / "deployments" / FILE_NAME


def prefect_file() -> Path:
    """Path of the deployment file: the wheel's packaged copy, else the checkout's (editable install).

    Raises ``FileNotFoundError`` naming both places when neither exists (a broken install).
    """
    packaged = Path(str(files(__name__).joinpath(FILE_NAME)))
    if packaged.is_file():
        return packaged
    checkout = checkout_prefect_file()
    if checkout.is_file():
        return checkout
    raise FileNotFoundError(f"no deployment file: neither {packaged} (installed wheel) nor {checkout} (checkout)")


__all__ = ["checkout_prefect_file", "prefect_file"]
