"""Local paths a user gives, made absolute where they are given (no Prefect import).

A block saved in a project folder is used by a worker in another folder (a process worker runs
each flow in a fresh temporary directory): a relative path kept as text would mean a different
file there. ``absolute_path`` resolves it against the folder of the process that takes it.
"""

from __future__ import annotations

import os


def absolute_path(value: str | None) -> str | None:
    """``value`` made absolute against the current folder; ``~`` paths are kept, to mean the
    home of the machine that uses them. ``None`` and blank stay ``None``."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    return text if text.startswith("~") else os.path.abspath(text)
