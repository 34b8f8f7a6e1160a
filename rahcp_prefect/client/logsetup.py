"""``RAHCP_LOG_LEVEL``: the one environment switch for the SDK's log verbosity."""

from __future__ import annotations

import logging
import os

PACKAGE_LOGGER = "rahcp_prefect"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def apply_log_level_from_env(environ: dict[str, str] | None = None) -> int | None:
    """Set the ``rahcp_prefect`` logger's level from ``RAHCP_LOG_LEVEL`` when it is set.

    Adds a stderr handler only when nothing would print the records otherwise (no handler on the
    package logger or the root logger), so an application's own logging setup is left alone.
    Returns the level applied, or None when the variable is unset.
    """
    env = os.environ if environ is None else environ
    raw = env.get("RAHCP_LOG_LEVEL", "").strip().upper()
    if not raw:
        return None
    if raw not in LEVELS:
        raise ValueError(f"RAHCP_LOG_LEVEL must be one of {', '.join(LEVELS)}, got {raw[:20]!r}")
    level = getattr(logging, raw)
    logger = logging.getLogger(PACKAGE_LOGGER)
    logger.setLevel(level)
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    return level
