"""``gatecheck conform``: the conformance suite with a friendlier front.

It runs the same pytest suite as ``pytest conformance`` (in-process, one run per target), after a
preflight of every target (one cheap request per key: a configuration mistake is one line and exit
2 before anything else is sent). It prints each verdict as it comes and a line whenever the run
waits (pacing, a Retry-After) or stops (the target stopped answering, the deadline); then the
summary table, every FAIL and WARN in full (rule, where it is documented, expected, received, a
curl command; failures first, one root cause shared by several checks printed once), why checks
were not checked, and the report paths (``reports/conformance/`` unless ``--report-dir``). ``-q``
keeps the table and the report paths only. Several ``--target`` files give one matrix comparing
the deployments side by side. ``--expected-failures FILE`` (or ``expected_failures`` in a target
file) lists known deviations: a listed FAIL is an XFAIL that does not fail the run, a listed check
that passes now fails it as a stale entry (``gatecheck.expected``); ``--write-expected-failures
FILE`` writes today's failures as a starting point. ``--record DIR`` keeps every exchange, one
cassette per check, for ``gatecheck replay``. ``--plan`` prints what a run would spend (requests, tokens, the
least time it waits) without sending anything; a run that would exceed ``--budget-requests``
refuses to start. ``--list`` prints the checks a selection (``-m``, ``-k``, ``--checks``) runs.

Exit codes: 0 conformant (no FAIL; WARNs listed), 1 failures, 2 usage or configuration error, or
nothing was checked, 130 interrupted (Ctrl-C: the reports are still written, marked interrupted).
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import pytest

from gatecheck._resources import data_dir
from gatecheck.checks import AREAS, EXTRA_MARKERS, Check, Cost, load_all
from gatecheck.checks.estimate import Estimate, duration, estimate_run
from gatecheck.checks.runner import FINDING_SEPARATOR
from gatecheck.config import Target, add_target_arguments, targets_from_args
from gatecheck.expected import PLACEHOLDER_REASON, ExpectedFailures, load_expected, write_expected
from gatecheck.report.conformance import check_writable
from gatecheck.results import CheckResult

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_REPORT_DIR = Path("reports") / "conformance"

NO_PLUGINS = ("-p", "no:cacheprovider", "-p", "no:terminal", "-p", "no:asyncio", "--capture=no")
"""No cache (the suite directory may be read-only), no pytest output (ours instead), no asyncio,
no capture (the progress lines are printed while a check runs)."""

_WIDTH = 100


def configure(parser: argparse.ArgumentParser) -> None:
    """Target options (shared table), selection, run bounds, fuzzing, reports and the plan."""
    add_target_arguments(parser)
    suite = parser.add_argument_group("suite")
    suite.add_argument(
        "--plan", action="store_true", help="print what the run would spend and wait, then exit"
    )
    suite.add_argument(
        "--list", action="store_true", help="list the checks the selection runs (id, area, what it checks)"
    )
    suite.add_argument(
        "--coverage", action="store_true", help="print the coverage map (docs/coverage.md), then exit"
    )
    markers = ", ".join([*AREAS, *EXTRA_MARKERS])
    suite.add_argument("-m", dest="markexpr", metavar="EXPR", help=f"select by marker: {markers}")
    suite.add_argument("-k", dest="keyword", metavar="EXPR", help="select checks by id substring expression")
    suite.add_argument("--checks", metavar="IDS", help="run only these check ids (comma-separated)")
    suite.add_argument(
        "--report-dir",
        type=Path,
        default=DEFAULT_REPORT_DIR,
        metavar="DIR",
        help=f"where the junit, JSON, Markdown and HTML reports go (default {DEFAULT_REPORT_DIR})",
    )
    suite.add_argument(
        "--deadline", type=float, metavar="MIN", help="minutes the whole run may take (default 30)"
    )
    suite.add_argument(
        "--no-preflight", action="store_true", help="skip the one cheap request per key sent before the run"
    )
    suite.add_argument("--fuzz-examples", type=int, metavar="N", help="requests per fuzz check (default 10)")
    suite.add_argument("--fuzz-seed", type=int, metavar="N", help="fuzz seed (default random, printed)")
    suite.add_argument(
        "-q", "--quiet", action="store_true", help="print only the summary table and the report paths"
    )
    adopt = parser.add_argument_group("known deviations and recordings")
    adopt.add_argument(
        "--expected-failures",
        type=Path,
        metavar="FILE",
        help="known deviations (TOML): a listed FAIL is XFAIL and does not fail the run; "
        "replaces every target file's expected_failures",
    )
    adopt.add_argument(
        "--write-expected-failures",
        type=Path,
        metavar="FILE",
        help="write today's failures to FILE as an expected-failures file "
        "(refused until every placeholder reason is replaced)",
    )
    adopt.add_argument(
        "--record",
        type=Path,
        metavar="DIR",
        help="record every exchange, one cassette per check, in DIR/<target>/ (see gatecheck replay)",
    )


def run(args: argparse.Namespace) -> int:
    """Preflight every target, run the suite once per target, then summarise and write the reports."""
    if args.coverage:
        from gatecheck.coverage import render

        print(render(), end="")
        return EXIT_OK
    targets = targets_from_args(args)
    if args.list:
        return list_checks(targets[0], args, sys.stdout)
    if args.plan:
        return max(plan_target(target, args, sys.stdout) for target in targets)
    if args.report_dir is not None:
        check_writable(args.report_dir)  # a ConfigError (exit 2) now, not a traceback after the run
    if args.record is not None:
        check_writable(args.record, "--record")
    expected = expected_failures(targets, args)  # a mistake in the file: exit 2 before anything is sent
    targets = [replace(t, expected_failures=_path(expected.get(t.name))) for t in targets]
    from gatecheck.preflight import preflight

    run_ = Run(started=datetime.now(UTC), expected=expected)
    try:
        if not args.no_preflight:
            for target in targets:
                line = preflight(target)
                if not args.quiet and target.base_url is not None:
                    print(line, flush=True)
        for target in targets:
            if run_suite(run_, target, args, several=len(targets) > 1) is not None:
                return EXIT_USAGE
            if run_.interrupted:
                break
    except KeyboardInterrupt:
        run_.interrupted = True
    return finish(run_, targets, args)


@dataclass
class Run:
    """What ``gatecheck conform`` gathered over its targets."""

    started: datetime
    expected: dict[str, ExpectedFailures] = field(default_factory=dict)
    """The known deviations of each target, by target name (``--expected-failures`` or its file)."""
    results: list[CheckResult] = field(default_factory=list)
    secrets: list[Any] = field(default_factory=list)
    collected: int = 0
    interrupted: bool = False
    junit: list[Path] = field(default_factory=list)


def run_suite(run_: Run, target: Target, args: argparse.Namespace, *, several: bool) -> int | None:
    """Run the suite on one target into ``run_``; an exit code when it could not run at all."""
    front = ConformFront(target, None if args.quiet else sys.stdout)
    argv = pytest_args(args, target, several)
    run_.junit.append(Path(argv[argv.index("--junitxml") + 1]))
    try:
        code = pytest.main([*argv, "--no-preflight"], plugins=[front])
    finally:
        run_.results += front.results
        run_.secrets += front.secrets
        run_.collected += front.collected
    if code == pytest.ExitCode.INTERRUPTED:
        run_.interrupted = True
    elif code in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.INTERNAL_ERROR):
        return EXIT_USAGE
    return None


def finish(run_: Run, targets: list[Target], args: argparse.Namespace) -> int:
    """Print the summary, the findings and the report paths; the exit code the results call for."""
    from gatecheck.report import summary_table, write_reports

    results = run_.results
    print()
    print(summary_table(results))
    if not args.quiet:
        details = findings_text(results, several=len(targets) > 1)
        if details:
            print(f"\n{details}")
    if results:
        run_info = {
            "started": run_.started,
            "finished": datetime.now(UTC),
            "targets": targets,
            "secrets": run_.secrets,
            "interrupted": run_.interrupted,
        }
        print()
        for kind, path in write_reports(results, args.report_dir, run_info=run_info).items():
            print(f"{kind} report: {path}")
        for junit in (path for path in run_.junit if path.exists()):
            print(f"junit report: {junit}")
    if args.record is not None and results:
        print(f"recording: {args.record} (replay it with: gatecheck replay {args.record})")
    if args.write_expected_failures is not None and results:
        count = write_expected(
            results,
            args.write_expected_failures,
            previous=list(run_.expected.values()),
            several_targets=len(targets) > 1,
        )
        print(
            f"expected failures written: {args.write_expected_failures} ({count} entries); "
            f"replace each {PLACEHOLDER_REASON!r} before using it"
        )
    if run_.interrupted:
        print(
            f"gatecheck conform: interrupted after {len(results)} of {run_.collected} checks", file=sys.stderr
        )
        return EXIT_INTERRUPTED
    if not results or all(r.verdict == "SKIP" for r in results):
        print("gatecheck conform: nothing was checked", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_FAILED if any(r.verdict == "FAIL" for r in results) else EXIT_OK


# ---------------------------------------------------------------- the findings, in full


@dataclass
class _Group:
    """One finding (or one unsplittable message) and every check that reported it."""

    verdict: str
    text: str
    checks: list[str] = field(default_factory=list)


def findings_text(results: list[CheckResult], *, several: bool) -> str:
    """Every FAIL and WARN in full, failures first; a finding several checks share is printed once.

    Findings are one root cause when their rule and received evidence are the same (the runner's
    ``finding_key``). Then the known deviations (XFAIL: the entry accepting each and its findings'
    first lines; the reports have them in full), and the reasons checks were not checked, one
    line per reason.
    """
    groups: dict[str, _Group] = {}
    for verdict in ("FAIL", "WARN"):
        for result in (r for r in results if r.verdict == verdict):
            label = f"{result.check_id} ({result.target})" if several else result.check_id
            for key, text in _findings(result):
                severity = "WARN" if text.startswith("WARN") else verdict
                groups.setdefault(key, _Group(severity, text)).checks.append(label)
    ordered = sorted(groups.values(), key=lambda g: g.verdict != "FAIL")
    blocks = [_block(group) for group in ordered]
    known = [_known_block(r, several) for r in results if r.verdict == "XFAIL"]
    skipped = _skip_reasons(results, several)
    return "\n\n".join(blocks + known + ([skipped] if skipped else []))


def _known_block(result: CheckResult, several: bool) -> str:
    """A known deviation, short: the entry that accepts it, then the first line of each finding."""
    label = f"{result.check_id} ({result.target})" if several else result.check_id
    head, _, rest = result.message.partition("\n")
    titles = [line for line in rest.splitlines() if line.startswith(("FAIL: ", "WARN: "))]
    text = textwrap.fill(
        f"── XFAIL {label}: {head.removeprefix('XFAIL: ')}",
        width=_WIDTH,
        subsequent_indent="   ",
        break_on_hyphens=False,
    )
    return "\n".join([text, *(f"   {title}" for title in titles)])


def _findings(result: CheckResult) -> list[tuple[str, str]]:
    """(root-cause key, formatted text) per finding of a result; the whole message when it cannot be split."""
    keys = result.extra.get("findings")
    parts = result.message.split(FINDING_SEPARATOR)
    if not isinstance(keys, list) or not keys or len(parts) < len(keys):
        return [(f"{result.target}/{result.check_id}", result.message)]
    found = [(f"{result.target}/{key}", text) for key, text in zip(keys, parts, strict=False)]
    rest = FINDING_SEPARATOR.join(parts[len(keys) :])
    return found + ([(f"{result.target}/{result.check_id}/rest", rest)] if rest else [])


def _block(group: _Group) -> str:
    shared = f"  ({len(group.checks)} checks, one root cause)" if len(group.checks) > 1 else ""
    head = textwrap.fill(
        f"── {group.verdict} {', '.join(group.checks)}{shared}",
        width=_WIDTH,
        subsequent_indent="   ",
        break_on_hyphens=False,
    )
    return f"{head}\n{group.text}"


def _skip_reasons(results: list[CheckResult], several: bool) -> str:
    """One line per reason checks were skipped, naming them."""
    reasons: dict[str, list[str]] = {}
    for result in (r for r in results if r.verdict == "SKIP"):
        label = f"{result.check_id} ({result.target})" if several else result.check_id
        reasons.setdefault(result.message, []).append(label)
    lines = [
        textwrap.fill(
            f"SKIP {', '.join(ids)}: {reason}", width=_WIDTH, subsequent_indent="   ", break_on_hyphens=False
        )
        for reason, ids in reasons.items()
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------- pytest, the plan and the list


def pytest_args(args: argparse.Namespace, target: Target, several: bool) -> list[str]:
    """The in-process pytest command line for one target (its own JUnit file when several)."""
    suite = data_dir("conformance")
    argv = [str(suite), "-c", os.devnull, "--rootdir", str(suite), *NO_PLUGINS]
    for flag, value in (("-m", args.markexpr), ("-k", args.keyword), ("--checks", args.checks)):
        if value:
            argv += [flag, value]
    numbers = (
        ("--fuzz-examples", args.fuzz_examples),
        ("--fuzz-seed", args.fuzz_seed),
        ("--deadline", args.deadline),
    )
    for flag, number in numbers:
        if number is not None:
            argv += [flag, str(number)]
    if not (args.plan or args.list):
        junit = f"junit-{target.name}.xml" if several else "junit.xml"
        argv += ["--junitxml", str(args.report_dir / junit)]
        if args.record is not None:
            argv += ["--record", str(args.record)]
    return argv


def expected_failures(targets: list[Target], args: argparse.Namespace) -> dict[str, ExpectedFailures]:
    """Each target's known deviations: ``--expected-failures``, else its target file's; checked now.

    A file is read once however many targets share it. Entries naming a target that is not in
    the run are said (they apply to nothing here), not refused: one file may serve several jobs.
    """
    files: dict[str, ExpectedFailures] = {}
    chosen: dict[str, ExpectedFailures] = {}
    for target in targets:
        path = args.expected_failures or target.expected_failures
        if path is None:
            continue
        if str(path) not in files:
            files[str(path)] = load_expected(path)
        chosen[target.name] = files[str(path)].for_target(target.name)
    names = [t.name for t in targets]
    for loaded in files.values():
        others = loaded.other_targets(names)
        if others and not args.quiet:
            where = ", ".join(others)
            print(f"expected failures: {loaded.path}: the entries for {where} apply to no target here")
    return chosen


def _path(expected: ExpectedFailures | None) -> str | None:
    return None if expected is None else str(expected.path)


def collect(target: Target, args: argparse.Namespace) -> ConformFront | None:
    """Collect the selection without running it; None when pytest refused the options."""
    front = ConformFront(target, None)
    code = pytest.main([*pytest_args(args, target, False), "--collect-only"], plugins=[front])
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED) or front.plan is None:
        return None
    return front


def plan_target(target: Target, args: argparse.Namespace, out: TextIO) -> int:
    """Collect without running and print the spend and the least waiting; 2 when over the budget."""
    front = collect(target, args)
    if front is None:
        return EXIT_USAGE
    estimate = estimate_run(front.checks, target, front.fuzz_examples)
    print(plan_text(target, estimate), file=out)
    if estimate.cost.requests > target.max_requests:
        print(
            f"gatecheck conform: {target.name}: the run would exceed --budget-requests "
            f"{target.max_requests}; it would refuse to start",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return EXIT_OK


def plan_text(target: Target, estimate: Estimate) -> str:
    """The plan's lines: spend, budget, the least waiting and why, the heavy checks."""
    cost = estimate.cost
    lines = [
        f"{target.name}: {estimate.checks} checks, at most {cost.requests} requests and "
        f"{cost.output_tokens} output tokens (budget {target.max_requests} requests, "
        f"{target.max_output_tokens} output tokens per request)",
        f"  about {cost.prompt_tokens} input tokens",
    ]
    if target.base_url is None:
        limits = "the embedded gateway: no pacing"
    else:
        limits = "pacing at {} rpm / {} tpm".format(*target.limits(1))
        if target.api_key_2 is not None and target.limits(2) != target.limits(1):
            limits += ", key 2 at {} rpm / {} tpm".format(*target.limits(2))
    lines.append(
        f"  waits at least {duration(estimate.wait_s)}: {duration(estimate.pacing_s)} of {limits}; "
        f"{duration(estimate.retry_after_s)} of Retry-After windows; plus the target's response times"
    )
    if estimate.heavy:
        lines.append(f"  runs last, one very large request each: {', '.join(estimate.heavy)}")
    return "\n".join(lines)


def list_checks(target: Target, args: argparse.Namespace, out: TextIO) -> int:
    """Print the checks the selection would run: id, area, what it checks, citation, rules."""
    front = collect(target, args)
    if front is None:
        return EXIT_USAGE
    print(check_list(front.checks), file=out)
    return EXIT_OK


def check_list(checks: list[Check] | None = None) -> str:
    """Each check: id, area, what it checks, where it is documented, and its rules' provenance."""
    from gatecheck.rules import rule

    chosen = list(load_all().values()) if checks is None else checks
    if not chosen:
        return "no check matches the selection"
    width = max(len(c.id) for c in chosen)
    lines = []
    for c in chosen:
        lines.append(f"{c.id:<{width}}  {c.area:<9}  {c.doc}  [{c.citation}]")
        lines += [f"{'':<{width}}    rule {r} ({rule(r).provenance}: {rule(r).source})" for r in c.rules]
    return "\n".join(lines)


class ConformFront:
    """The pytest plugin object ``gatecheck conform`` registers: gives the target, takes the verdicts."""

    def __init__(self, target: Target, progress: TextIO | None) -> None:
        self.target = target
        self.progress = progress
        self.results: list[CheckResult] = []
        self.secrets: list[Any] = []
        self.checks: list[Check] = []
        self.plan: Cost | None = None
        self.fuzz_examples = 0
        self.collected = 0

    def pytest_gatecheck_target(self, config: pytest.Config) -> Target:
        return self.target

    def pytest_gatecheck_result(self, result: CheckResult) -> None:
        self.results.append(result)
        if self.progress is not None:
            print(
                f"  {result.verdict:<4}  {result.check_id}  ({result.duration_s:.2f}s)",
                file=self.progress,
                flush=True,
            )

    def pytest_gatecheck_notice(self, config: pytest.Config, line: str) -> None:
        if self.progress is not None:
            print(f"  ....  {line}", file=self.progress, flush=True)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        from gatecheck.pytest_plugin import STATE, CheckItem

        state = session.config.stash[STATE]
        self.plan = state.plan
        self.checks = [i.check for i in session.items if isinstance(i, CheckItem)]
        self.fuzz_examples = state.options.fuzz_examples
        self.collected = len(session.items)
        if self.progress is not None and not session.config.option.collectonly:
            requests = self.plan.requests if self.plan is not None else 0
            print(
                f"{self.target.describe()}\n  {self.collected} checks, at most {requests} requests; "
                f"fuzz seed {state.options.fuzz_seed}",
                file=self.progress,
                flush=True,
            )

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            print(
                f"gatecheck conform: cannot collect {report.nodeid}: {report.longreprtext}", file=sys.stderr
            )

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from gatecheck.pytest_plugin import STATE

        state = session.config.stash.get(STATE, None)
        if state is not None:
            self.secrets = list(state.secrets)
