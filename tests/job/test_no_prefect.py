"""The job layer (``JobRun`` and its rules) runs without Prefect: the flows hand it their tasks."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_job_layer_imports_no_prefect() -> None:
    code = (
        "import sys, rahcp_prefect.job, rahcp_prefect.job.run, rahcp_prefect.job.upload, rahcp_prefect.job.download\n"
        "print(sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.')))"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert found.stdout.strip() == "[]"
