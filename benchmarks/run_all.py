"""Run every benchmark in turn (``make bench``); each prints its own JSON lines.

    python -m benchmarks.run_all [name ...]     # e.g. tracker transfer; default: all of them

Every module of ``benchmarks/`` is one benchmark (tens of minutes in all on a 2-core machine);
figures are recorded in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FIRST = ("tracker", "transfer")
"""Run first (the figures most often asked for); every other module of ``benchmarks/`` follows
in name order, so a new benchmark is never left out."""
BENCHMARKS = FIRST + tuple(
    sorted(
        path.stem for path in Path(__file__).parent.glob("*.py")
        if path.stem not in {"__init__", "run_all", *FIRST} and not path.stem.startswith("_")
    )
)


def main(names: list[str]) -> int:
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    for name in names or BENCHMARKS:
        print(f"# benchmarks.{name}", flush=True)
        result = subprocess.run([sys.executable, "-m", f"benchmarks.{name}"], check=False)
        if result.returncode != 0:
            print(f"benchmarks.{name} failed (exit {result.returncode})", file=sys.stderr)
            return result.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
