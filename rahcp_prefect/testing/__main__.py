"""``python -m rahcp_prefect.testing [options]`` = ``rahcp-prefect emulator [options]``."""

from __future__ import annotations

import argparse
import sys

from rahcp_prefect.cli import add_emulator_arguments


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m rahcp_prefect.testing")
    add_emulator_arguments(parser)
    args = parser.parse_args()
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
