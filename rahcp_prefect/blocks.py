"""Prefect blocks: HCP credentials, transfer settings, the transfer tracker and the bucket.

Blocks hold what a deployment should not hard-code: where HCP is and who we are
(``HCPCredentials``), how hard to push the wire (``HCPTransferSettings``), where the transfer
state lives (``HCPTracker``) and a bucket to use as storage (``HCPBucket``). Secrets are
``SecretStr`` and never leave the block except into the SDK, which redacts them from every log
line and error.

This module is the one Prefect loads (the ``prefect.collections`` entry point) and the one to
import from. The setting blocks are declared in ``setting_blocks``, the bucket in ``bucket``,
which builds on them: the imports go one way down.
"""

from __future__ import annotations

from rahcp_prefect.bucket import HCPBucket
from rahcp_prefect.setting_blocks import (
    _DOCS_URL,
    LOGO_FILE,
    LOGO_URL,
    HCPCredentials,
    HCPTracker,
    HCPTransferSettings,
)

__all__ = ["LOGO_FILE", "LOGO_URL", "_DOCS_URL", "HCPBucket", "HCPCredentials", "HCPTracker", "HCPTransferSettings"]
