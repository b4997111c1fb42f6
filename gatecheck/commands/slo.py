"""``gatecheck slo``: the load run's SLO gate, offline, on a saved summary.

    gatecheck slo reports/<run>.json --slo slo.toml [--baseline reports/<earlier>.json]

Prints one line per objective (and per regression); exit 0 when everything holds, 1 when an
objective is violated or a figure regressed, 2 for an unreadable file or an unknown objective.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gatecheck.load.slo import compare, evaluate, load_slo
from gatecheck.load.summary import read_summary


def configure(parser: argparse.ArgumentParser) -> None:
    """The summary to gate, the SLO file, an optional baseline."""
    parser.add_argument("summary", type=Path, help="a load summary JSON written by a gatecheck load run")
    parser.add_argument("--slo", type=Path, default=None, help="SLO file (TOML objectives)")
    parser.add_argument("--baseline", type=Path, default=None, help="an earlier summary to compare with")
    parser.add_argument(
        "--regression-threshold",
        type=float,
        default=0.1,
        help="relative change counted as a regression (default 0.1)",
    )


def run(args: argparse.Namespace) -> int:
    """Gate the summary; 0 pass, 1 fail."""
    summary = read_summary(args.summary)
    failed = False
    if args.slo is None and args.baseline is None:
        print("gatecheck slo: nothing to check: give --slo FILE and/or --baseline FILE")
        return 2
    if args.slo is not None:
        result = evaluate(summary, load_slo(args.slo))
        for line in result.lines():
            print(line)
        failed |= not result.passed
    if args.baseline is not None:
        regressions = compare(summary, read_summary(args.baseline), args.regression_threshold)
        for regression in regressions:
            print(regression.line())
        if not regressions:
            print(f"baseline: no figure regressed by more than {args.regression_threshold:.0%}")
        failed |= bool(regressions)
    print("gatecheck slo: FAIL" if failed else "gatecheck slo: pass")
    return 1 if failed else 0
