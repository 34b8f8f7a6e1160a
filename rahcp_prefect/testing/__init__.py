"""Local HCP emulator: the HCP backend API (FastAPI) in front of a real S3 server (moto).

Import is lazy so that loading the pytest plugins (``rahcp_prefect.testing.fixtures``,
``rahcp_prefect.testing.postgres``) does not pull FastAPI, moto and boto3 into every test run.
"""

from __future__ import annotations

from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rahcp_prefect.testing.emulator import HCPEmulator
    from rahcp_prefect.testing.faults import FaultInjector, FaultRule

__all__ = ["EmulatorExtraMissing", "FaultInjector", "FaultRule", "HCPEmulator", "require_emulator_extra"]

EMULATOR_MODULES = ("fastapi", "uvicorn", "moto", "boto3", "jwt")
"""What the ``emulator`` extra installs (``jwt`` is PyJWT), by import name."""


class EmulatorExtraMissing(ModuleNotFoundError):
    """The emulator's dependencies are not installed: the message names the extra to install."""


def require_emulator_extra() -> None:
    """Raise ``EmulatorExtraMissing`` unless every module of the ``emulator`` extra is importable."""
    missing = [module for module in EMULATOR_MODULES if find_spec(module) is None]
    if missing:
        raise EmulatorExtraMissing(
            f"the HCP emulator needs the 'emulator' extra: pip install 'rahcp-prefect[emulator]' "
            f"(missing: {', '.join(missing)})",
            name=missing[0],
        )


def __getattr__(name: str) -> Any:
    if name == "HCPEmulator":
        require_emulator_extra()
        from rahcp_prefect.testing.emulator import HCPEmulator

        return HCPEmulator
    if name in ("FaultInjector", "FaultRule"):
        from rahcp_prefect.testing import faults

        return getattr(faults, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
