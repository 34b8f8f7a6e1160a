"""Local HCP emulator: the HCP backend API (FastAPI) in front of a real S3 server (moto).

Import is lazy so that loading the pytest plugins (``rahcp_prefect.testing.fixtures``,
``rahcp_prefect.testing.postgres``) does not pull FastAPI, moto and boto3 into every test run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rahcp_prefect.testing.emulator import HCPEmulator
    from rahcp_prefect.testing.faults import FaultInjector, FaultRule

__all__ = ["FaultInjector", "FaultRule", "HCPEmulator"]


def __getattr__(name: str) -> Any:
    if name == "HCPEmulator":
        from rahcp_prefect.testing.emulator import HCPEmulator

        return HCPEmulator
    if name in ("FaultInjector", "FaultRule"):
        from rahcp_prefect.testing import faults

        return getattr(faults, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
