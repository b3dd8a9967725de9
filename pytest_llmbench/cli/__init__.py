"""The ``llmbench`` command.

Each command group registers itself with :func:`build_parser` through a small ``add_*``
function that sets ``handler`` on its sub-parsers; ``main`` dispatches and is the one place
that reports errors: each of ours (:mod:`pytest_llmbench.errors`) is one line on stderr and its
exit code, 4 for a user's mistake (a missing or malformed file), like the plugin's usage errors,
1 for a failure; argparse's own errors keep its exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pytest_llmbench.cli.compat import add_compat_commands
from pytest_llmbench.cli.models import add_models_commands
from pytest_llmbench.cli.report import add_report_commands
from pytest_llmbench.cli.variants import add_variants_commands
from pytest_llmbench.errors import LlmbenchError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmbench", description="pytest-llmbench: LLM inference benchmark reports and tools."
    )
    commands = parser.add_subparsers(dest="command", required=True, title="commands")
    add_report_commands(commands)
    add_compat_commands(commands)
    add_variants_commands(commands)
    add_models_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except LlmbenchError as exc:
        print(f"llmbench: error: {exc}", file=sys.stderr)
        return exc.exit_code
