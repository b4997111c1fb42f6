"""``gatecheck replay DIR``: judge a recorded run again, offline: no network, no key, no waiting.

``DIR`` is what ``--record DIR`` wrote (``gatecheck conform`` or ``pytest conformance``): one
directory per target, each with ``run.json`` and a cassette per check. Every recorded check runs
again, in the recorded order, on the recorded exchanges and at the recorded timing
(``gatecheck.cassettes``). It prints each verdict, the summary table, every FAIL and WARN in full
(as ``gatecheck conform`` does), the verdicts that differ from the recording (expected after
upgrading gatecheck: that is what re-judging is for), and writes the reports to
``reports/replay/`` unless ``--report-dir`` says otherwise. ``--expected-failures`` applies a
file of known deviations as in a live run.

Exit codes: 0 no FAIL, 1 failures, 2 usage error, a directory that is no recording, nothing
checked, or a replay that diverged (a check sent a request the recording does not hold: its
verdict could not be reproduced; the check ends in a ``check-error`` FAIL saying which request).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from gatecheck.cassettes import Replayer, recordings, replay
from gatecheck.commands.conform import EXIT_FAILED, EXIT_OK, EXIT_USAGE, findings_text
from gatecheck.errors import ConfigError
from gatecheck.expected import load_expected
from gatecheck.report.conformance import check_writable
from gatecheck.results import CheckResult

DEFAULT_REPORT_DIR = Path("reports") / "replay"


def configure(parser: argparse.ArgumentParser) -> None:
    """The recording, a selection, known deviations, reports."""
    parser.add_argument("recording", type=Path, metavar="DIR", help="a directory written by --record")
    parser.add_argument("--checks", metavar="IDS", help="replay only these check ids (comma-separated)")
    parser.add_argument(
        "--expected-failures",
        type=Path,
        metavar="FILE",
        help="known deviations (TOML), applied as in a live run",
    )
    parser.add_argument(
        "--report-dir",
        type=Path,
        default=DEFAULT_REPORT_DIR,
        metavar="DIR",
        help=f"where the JSON, Markdown and HTML reports go (default {DEFAULT_REPORT_DIR})",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="print only the summary table and the report paths"
    )


def run(args: argparse.Namespace) -> int:
    """Replay every recorded target, then summarise like ``gatecheck conform``."""
    from gatecheck.report import summary_table, write_reports

    runs = recordings(args.recording)
    check_writable(args.report_dir)
    expected = load_expected(args.expected_failures) if args.expected_failures else None
    wanted = {c.strip() for c in args.checks.split(",") if c.strip()} if args.checks else None
    started = datetime.now(UTC)
    results: list[CheckResult] = []
    targets = []
    notes: list[str] = []
    diverged = False
    if wanted is not None:
        recorded = {c.check_id for directory in runs for c in Replayer.load(directory).checks}
        missing = sorted(wanted - recorded)
        if missing:
            raise ConfigError("--checks", ",".join(missing), "check ids the recording holds")
    for directory in runs:
        done = replay(directory, wanted, on_result=None if args.quiet else _progress)
        target = done.replayer.target
        judge = expected.for_target(target.name) if expected is not None else None
        results += [judge.apply(r) if judge is not None else r for r in done.results]
        targets.append(target)
        notes += _notes(directory, done.replayer.recorded_with, done.changed, done.unknown, len(done.results))
        if done.diverged:
            diverged = True
            notes += [f"  diverged: {miss}" for miss in done.replayer.misses]
    print()
    print(summary_table(results))
    if not args.quiet:
        details = findings_text(results, several=len(targets) > 1)
        if details:
            print(f"\n{details}")
    print()
    print("\n".join(notes))
    if results:
        run_info = {"started": started, "finished": datetime.now(UTC), "targets": targets}
        for kind, path in write_reports(results, args.report_dir, run_info=run_info).items():
            print(f"{kind} report: {path}")
    if diverged:
        print("gatecheck replay: the replay diverged from the recording (above)", file=sys.stderr)
        return EXIT_USAGE
    if not results or all(r.verdict == "SKIP" for r in results):
        print("gatecheck replay: nothing was checked", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_FAILED if any(r.verdict == "FAIL" for r in results) else EXIT_OK


def _progress(result: CheckResult) -> None:
    print(f"  {result.verdict:<4}  {result.check_id}", flush=True)


def _notes(directory: Path, version: str, changed: list[str], unknown: list[str], replayed: int) -> list[str]:
    """What a reader must know about one replayed recording: its origin and what differs from it."""
    lines = [f"replayed {directory} (recorded with gatecheck {version}): {replayed} checks"]
    if changed:
        lines.append(f"  {len(changed)} verdicts differ from the recording:")
        lines += [f"    {line}" for line in changed]
    else:
        lines.append("  every verdict is the recorded one")
    if unknown:
        lines.append(f"  not replayed (no such check in this gatecheck): {', '.join(unknown)}")
    return lines
