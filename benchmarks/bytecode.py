"""Bytecode instructions per file, ours against the floor: a profile that machine load cannot move.

    python -m benchmarks.bytecode [--only upload,download] [--data-dir DIR]

The CPU per file of ``benchmarks.transfer`` moves by 10-20 % from run to run on a shared host,
more than most changes to the engine do. This counts the Python bytecode instructions each
client executes inside its clock (the same clock, the same 2,000 files of 10 KB, the same
emulator as ``benchmarks.transfer``'s upload-small and download-small, each client in a fresh
child process): the same code on the same files gives the same count within a few tenths of a
percent, so a change's effect on the interpreter's work shows at once, where it goes and by how
much. C work (hashing, parsing HTTP, SQLite, the kernel) is not counted; the CPU bar stays
judged by ``benchmarks.transfer``.

Prints one JSON object per direction: ``ours`` and ``floor`` instructions per file, ``ratio``
(ours / floor), ``by_part`` (instructions per file of each package, ours' modules one by one,
``benchmarks.transfer``'s code as ``floor``), ``gap`` (the parts whose difference is largest) and
``ours_functions`` (ours' own functions with the most instructions per file). Tracing makes each
run 20-50 times slower: about a minute in all.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

from benchmarks import transfer

TOP = 15
"""Parts and functions listed in ``gap`` and ``ours_functions``."""


def _is_ours(filename: str) -> bool:
    return "rahcp_prefect" in Path(filename).parts


def part_of(filename: str) -> str:
    """Where an instruction's code lives: ours' module (``bulk/upload.py``), a package
    (``aiohttp``), a standard module (``asyncio``), or ``benchmarks.transfer`` (``floor``: the
    floor's client; in ours' count only the wrapper that times its API calls)."""
    path = Path(filename)
    parts = path.parts
    if _is_ours(filename):
        return "/".join(parts[parts.index("rahcp_prefect") + 1:])
    if "site-packages" in parts:
        rest = parts[parts.index("site-packages") + 1:]
        return rest[0].removesuffix(".py") if rest else filename
    if path.name == "transfer.py" and "benchmarks" in parts:
        return "floor"
    if filename.startswith("<"):
        return filename  # e.g. <string>: the __init__ of a dataclass
    stdlib = [i for i, name in enumerate(parts) if name.startswith("python3")]
    if stdlib and stdlib[-1] + 1 < len(parts):
        return parts[stdlib[-1] + 1].removesuffix(".py")
    return filename


class Counting:
    """Counts every instruction of every Python frame run while it is on (``sys.settrace``)."""

    def __init__(self) -> None:
        self.counts: Counter[CodeType] = Counter()
        self._previous: Any = None

    def _local(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "opcode":
            self.counts[frame.f_code] += 1
        return self._local

    def _global(self, frame: FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        return self._local

    def start(self) -> None:
        self._previous = sys.gettrace()
        sys.settrace(self._global)

    def stop(self) -> None:
        sys.settrace(self._previous)  # e.g. a coverage tracer that was on before


def child_main(spec: dict[str, Any]) -> None:
    """Run one client as ``benchmarks.transfer`` does, counting inside its timed clock only (the
    floor's first clock is its setup: walk and presign, which ours does inside its clock)."""
    counting = Counting()
    entered = [0]
    skip = 1 if spec["runner"].startswith("floor") else 0
    enter, leave = transfer.Clock.__enter__, transfer.Clock.__exit__

    def counted_enter(clock: transfer.Clock) -> transfer.Clock:
        entered[0] += 1
        if entered[0] > skip:
            counting.start()
        return enter(clock)

    def counted_exit(clock: transfer.Clock, *exc: object) -> None:
        leave(clock, *exc)
        if entered[0] > skip:
            counting.stop()

    transfer.Clock.__enter__ = counted_enter  # type: ignore[method-assign]
    transfer.Clock.__exit__ = counted_exit  # type: ignore[method-assign]
    result = asyncio.run(transfer.RUNNERS[spec["runner"]](spec))
    files = result["files"]
    by_part: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    for code, count in counting.counts.items():
        part = part_of(code.co_filename)
        by_part[part] += count
        if _is_ours(code.co_filename):
            functions[f"{part}:{code.co_firstlineno}:{code.co_name}"] += count
    print(json.dumps({
        "files": files,
        "ok": result.get("ok", files),
        "ops_per_file": round(sum(by_part.values()) / files, 1),
        "by_part": {k: round(v / files, 1) for k, v in by_part.most_common()},
        "functions": {k: round(v / files, 1) for k, v in functions.most_common(TOP)},
    }), flush=True)


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    return transfer.run_child(spec, module="benchmarks.bytecode")


def report(direction: str, mine: dict[str, Any], floor: dict[str, Any]) -> dict[str, Any]:
    parts = set(mine["by_part"]) | set(floor["by_part"])
    gap = sorted(
        ((part, round(mine["by_part"].get(part, 0.0) - floor["by_part"].get(part, 0.0), 1)) for part in parts),
        key=lambda item: -abs(item[1]),
    )[:TOP]
    return {
        "scenario": f"{direction}-small",
        "ours": mine["ops_per_file"],
        "floor": floor["ops_per_file"],
        "ratio": round(mine["ops_per_file"] / floor["ops_per_file"], 3),
        "files": {"ours": mine["ok"], "floor": floor["files"]},
        "gap": dict(gap),
        "ours_functions": mine["functions"],
        "by_part": {"ours": mine["by_part"], "floor": floor["by_part"]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bytecode")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", default=os.path.join(tempfile.gettempdir(), "rahcp-bench-transfer"))
    parser.add_argument("--only", default="upload,download", help="comma-separated directions")
    args = parser.parse_args()
    if args.child:
        child_main(json.loads(args.child))
        return
    directions = [d for d in args.only.split(",") if d]
    unknown = set(directions) - {"upload", "download"}
    if unknown:
        parser.error(f"unknown direction(s): {', '.join(sorted(unknown))}; choose upload, download")
    data = Path(args.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    source = transfer.prepare_small(data)
    work = Path(tempfile.mkdtemp(prefix="ops-", dir=data))
    try:
        with transfer.Emulator() as emu:
            base = {"api": emu.api, "workers": 10}
            for direction in directions:
                if direction == "upload":
                    floor = run_child({**base, "runner": "floor-upload", "source": str(source), "bucket": emu.bucket("ops-floor")})
                    mine = run_child({**base, "runner": "ours", "direction": "upload", "source": str(source),
                                      "bucket": emu.bucket("ops-ours"), "tracker": str(work / "up.db"), "job": "up"})
                else:
                    bucket = emu.bucket("ops-down")
                    keys = transfer.load_objects(emu, bucket, source)
                    floor = run_child({**base, "runner": "floor-download", "bucket": bucket, "keys": keys,
                                       "dest": str(work / "down-floor")})
                    mine = run_child({**base, "runner": "ours", "direction": "download", "bucket": bucket,
                                      "dest": str(work / "down-ours"), "tracker": str(work / "down.db"), "job": "down"})
                print(json.dumps(report(direction, mine, floor)), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
