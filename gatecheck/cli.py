"""The ``gatecheck`` command: a thin front over the core library.

Each subcommand lives in ``gatecheck.commands.<name>`` and exposes ``configure(parser)`` and
``run(args) -> int``; its one-line help is in ``COMMANDS`` below (the one place it is written), so
modules are imported only when their command runs and ``gatecheck serve`` never imports locust.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from gatecheck import __version__
from gatecheck.errors import ConfigError, GatecheckError

COMMANDS = {
    "serve": "run the reference gateway (the embedded default target)",
    "conform": "run the conformance suite against a target",
    "replay": "judge a recorded conformance run again, offline (no network, no key)",
    "demo": "start the reference gateway, check it and load it, write the reports",
    "load": "run a locust load test against a target",
    "slo": "gate a saved load summary against SLO objectives",
    "upstream": "run the scripted upstream a gateway under test calls (the upstream area)",
}


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """The parser; only the chosen subcommand's module is imported to configure it."""
    # No abbreviated options: a script that writes --expected-failure would silently change meaning
    # the day an option with that prefix is added (and docs/ci/'s commands are checked exactly).
    parser = argparse.ArgumentParser(
        prog="gatecheck", description=__doc__.splitlines()[0] if __doc__ else None, allow_abbrev=False
    )
    parser.add_argument("--version", action="version", version=f"gatecheck {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((a for a in argv if a in COMMANDS), None)
    for name, help_text in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text, allow_abbrev=False)
        if name == chosen:
            importlib.import_module(f"gatecheck.commands.{name}").configure(sub_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_list)
    args = parser.parse_args(args_list)
    module = importlib.import_module(f"gatecheck.commands.{args.command}")
    try:
        return int(module.run(args))
    except ConfigError as exc:
        print(f"gatecheck {args.command}: {exc}", file=sys.stderr)
        return 2
    except GatecheckError as exc:
        print(f"gatecheck {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gatecheck {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
