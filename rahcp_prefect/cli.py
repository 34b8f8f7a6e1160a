"""The ``rahcp-prefect`` command: ``setup`` (blocks, work pool, deployments on a Prefect server),
``emulator`` (a local HCP for trying things out and for tests), ``errors`` (a job's failed files)
and ``prefect-file``.

Add a subcommand with ``sub.add_parser(...)`` in ``build_parser`` setting ``func`` on its parser.
"""

from __future__ import annotations

import argparse
import gc
import json
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any, cast


def _parse_users(value: str) -> dict[str, str]:
    users: dict[str, str] = {}
    for item in value.split(","):
        if not item.strip():
            continue
        name, sep, password = item.partition(":")
        if not sep or not name or not password:
            raise argparse.ArgumentTypeError("expected user:pass[,user:pass...]")
        users[name.strip()] = password
    return users


def add_emulator_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``rahcp-prefect emulator`` (also used by ``python -m rahcp_prefect.testing``)."""
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="API port (0 = any free port)")
    parser.add_argument("--s3-endpoint", default=None, help="use this S3 server instead of moto")
    parser.add_argument("--s3-port", type=int, default=0, help="port of the built-in moto S3")
    parser.add_argument(
        "--s3-public-endpoint",
        default=None,
        help="S3 URL written into presigned URLs, when clients reach S3 under another name",
    )
    parser.add_argument(
        "--users",
        type=_parse_users,
        default=None,
        help="user:pass,... accepted at login (default: any non-empty credentials)",
    )
    parser.add_argument("--token-ttl-seconds", type=float, default=28800.0)
    parser.add_argument("--no-mapi", action="store_true", help="serve no /mapi routes (404)")
    parser.add_argument(
        "--no-presign-expiry",
        action="store_true",
        help="let the built-in S3 accept expired presigned URLs (moto's own behaviour)",
    )
    parser.add_argument(
        "--mode",
        choices=("hcp", "s3"),
        default=None,
        help="hcp: enforce HCP's namespace rules (409 onto existing keys, retention and holds, "
        "1 MiB parts); s3: permissive plain S3 (default: the emulator's default, hcp)",
    )
    parser.add_argument(
        "--cache-ttl",
        type=float,
        default=None,
        help="cache listings this many seconds (HEADs 2.5 times as long), as the reference "
        "backend does with Redis (120); presigned PUTs do not invalidate it (default: off)",
    )
    parser.add_argument(
        "--store",
        choices=("moto", "metadata"),
        default="moto",
        help="moto: keep objects with their bytes; metadata: keep each object's key, size, ETag "
        "and digests only (a million objects fit in memory; GETs answer zeros of the right length)",
    )
    parser.set_defaults(func=run_emulator)


def run_emulator(args: argparse.Namespace) -> int:
    """Start the emulator, print one JSON line with its URLs, serve until SIGTERM/SIGINT."""
    from rahcp_prefect.testing import EmulatorExtraMissing, require_emulator_extra

    try:
        require_emulator_extra()
    except EmulatorExtraMissing as exc:
        raise SystemExit(f"rahcp-prefect emulator: {exc}") from None
    from rahcp_prefect.testing.emulator import HCPEmulator

    stop = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    emulator = HCPEmulator(
        host=args.host,
        port=args.port,
        s3_endpoint=args.s3_endpoint,
        users=args.users,
        token_ttl_seconds=args.token_ttl_seconds,
        mapi_enabled=not args.no_mapi,
        enforce_presign_expiry=not args.no_presign_expiry,
        s3_port=args.s3_port,
        s3_public_endpoint=args.s3_public_endpoint,
        cache_ttl=args.cache_ttl,
        store=args.store,
        **({"mode": args.mode} if args.mode else {}),
    )
    with emulator:
        # The process's own heap (moto, botocore's models, the app) outlives every request: kept
        # out of the collector, a full collection scans what requests leave instead of pausing
        # every request for 100-230 ms a few times a run (a stop an HCP does not make).
        gc.collect()
        gc.freeze()
        line = {"api": emulator.base_url, "root": emulator.root_url, "s3": emulator.s3_endpoint}
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    return 0


USER_GUIDE = """\
start here (with a Prefect server at PREFECT_API_URL):
  HCP_PASSWORD=... rahcp-prefect setup --endpoint https://hcp.example/api/v1 --username USER
  prefect worker start --pool rahcp-process
  prefect deployment run bulk-upload/default -p source_dir=/data/in -p bucket=BUCKET

try it without an HCP (needs pip install 'rahcp-prefect[emulator]'):
  rahcp-prefect emulator --port 8000      # API at http://127.0.0.1:8000/api/v1

`rahcp-prefect COMMAND --help` lists a command's options.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rahcp-prefect",
        description="Move files to and from Hitachi Content Platform (HCP) with Prefect.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=USER_GUIDE,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    emulator = sub.add_parser("emulator", help="run the local HCP emulator (API + moto S3)")
    add_emulator_arguments(emulator)
    setup = sub.add_parser(
        "setup",
        help="register blocks, create the work pool, deploy the flows",
        description=(
            "Check the Prefect API (PREFECT_API_URL), the HCP login, the tracker database and the "
            "deployment file, then create the process work pool, the blocks hcp, hcp-settings and "
            "hcp-tracker, and the deployments bulk-upload/default, bulk-download/default, ... "
            "Nothing is created when a check fails; running it again overwrites the blocks."
        ),
    )
    _add_setup_arguments(setup)
    errors = sub.add_parser("errors", help="list every failed file of a job (key relative to its prefix, reason)")
    _add_errors_arguments(errors)
    prefect_file = sub.add_parser("prefect-file", help="print the path of the packaged prefect.yaml")
    prefect_file.set_defaults(func=run_prefect_file)
    return parser


def _add_errors_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--job", required=True, help="the tracker job, as the run's summary names it")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--tracker-block", default=None, help="name of an HCP Tracker block (needs the Prefect API)")
    where.add_argument("--tracker", default=None, help="a SQLite tracker file or a postgresql:// DSN")
    parser.add_argument("--json", action="store_true", help="one JSON object per line instead of key<TAB>reason")
    parser.set_defaults(func=run_errors)


def run_errors(args: argparse.Namespace) -> int:
    """Print every failure of ``--job``; exit 0 (even when there are none), 2 for an unknown job."""
    from rahcp_prefect.report.errors import job_failures
    from rahcp_prefect.tracker import create_tracker

    if args.tracker is not None:
        target = args.tracker
    else:
        from rahcp_prefect.blocks import HCPTracker

        block = cast(HCPTracker, HCPTracker.load(args.tracker_block)) if args.tracker_block else HCPTracker()
        target = block.target()
    tracker = create_tracker(target, job=args.job)
    try:
        if tracker.job_info() is None and not any(tracker.summary().values()):
            print(f"no job {args.job!r} in this tracker", file=sys.stderr)
            return 2
        count = 0
        for key, reason in job_failures(tracker):
            count += 1
            print(json.dumps({"key": key, "reason": reason}) if args.json else f"{key}\t{reason}")
    finally:
        tracker.close()
    print(f"{count} failed file(s) in job {args.job}", file=sys.stderr)
    return 0


def run_prefect_file(args: argparse.Namespace) -> int:
    """Print where the packaged ``prefect.yaml`` is, for ``prefect deploy --prefect-file``."""
    from rahcp_prefect.deployments import prefect_file

    print(prefect_file())
    return 0


def _add_setup_arguments(parser: argparse.ArgumentParser) -> None:
    # Imported here: the setup command needs Prefect, the emulator command does not.
    from rahcp_prefect.provision import add_setup_arguments

    add_setup_arguments(parser)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
