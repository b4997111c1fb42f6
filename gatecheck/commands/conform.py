"""``gatecheck conform``: the conformance suite with a friendlier front.

It runs the same pytest suite as ``pytest conformance`` (in-process, one run per target), prints
each verdict as it comes, then a summary table and the report paths. Several ``--target`` files
give one matrix comparing the deployments side by side. ``--plan`` prints what a run would spend
(requests, output tokens) without sending anything; a run that would exceed ``--budget-requests``
refuses to start.

Exit codes: 0 conformant (no FAIL; WARNs listed), 1 failures, 2 usage or configuration error, or
nothing was checked.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import pytest

from gatecheck._resources import data_dir
from gatecheck.checks import AREAS, CHECKS, Cost, load_all
from gatecheck.config import Target, add_target_arguments, targets_from_args
from gatecheck.report.conformance import check_writable
from gatecheck.results import CheckResult

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

NO_PLUGINS = ("-p", "no:cacheprovider", "-p", "no:terminal", "-p", "no:asyncio", "--capture=no")
"""No cache (the suite directory may be read-only), no pytest output (ours instead), no asyncio,
no capture (the progress lines are printed while a check runs)."""


def configure(parser: argparse.ArgumentParser) -> None:
    """Target options (shared table), selection, fuzzing, reports and the plan."""
    add_target_arguments(parser)
    suite = parser.add_argument_group("suite")
    suite.add_argument("--plan", action="store_true", help="print what the run would spend, then exit")
    suite.add_argument(
        "--list", action="store_true", help="list the checks (id, area, what it checks), then exit"
    )
    suite.add_argument(
        "--coverage", action="store_true", help="print the coverage map (docs/coverage.md), then exit"
    )
    suite.add_argument(
        "-m", dest="markexpr", metavar="EXPR", help=f"select by marker: {', '.join(AREAS)}, slow, costly"
    )
    suite.add_argument("-k", dest="keyword", metavar="EXPR", help="select checks by id substring expression")
    suite.add_argument("--checks", metavar="IDS", help="run only these check ids (comma-separated)")
    suite.add_argument(
        "--report-dir", type=Path, metavar="DIR", help="write junit, JSON, Markdown and HTML reports"
    )
    suite.add_argument("--fuzz-examples", type=int, metavar="N", help="requests per fuzz check (default 10)")
    suite.add_argument("--fuzz-seed", type=int, metavar="N", help="fuzz seed (default random, printed)")
    suite.add_argument("-q", "--quiet", action="store_true", help="no per-check progress lines")


def run(args: argparse.Namespace) -> int:
    """Run the suite once per target; print progress, the summary table and the report paths."""
    if args.list:
        print(check_list())
        return EXIT_OK
    if args.coverage:
        from gatecheck.coverage import render

        print(render(), end="")
        return EXIT_OK
    targets = targets_from_args(args)
    if args.plan:
        return max(plan_target(target, args, sys.stdout) for target in targets)
    if args.report_dir is not None:
        check_writable(args.report_dir)  # a ConfigError (exit 2) now, not a traceback after the run
    started = datetime.now(UTC)
    results: list[CheckResult] = []
    secrets: list[Any] = []
    for target in targets:
        front = ConformFront(target, None if args.quiet else sys.stdout)
        code = pytest.main(pytest_args(args, target, len(targets) > 1), plugins=[front])
        if code == pytest.ExitCode.USAGE_ERROR or code == pytest.ExitCode.INTERNAL_ERROR:
            return EXIT_USAGE
        results += front.results
        secrets += front.secrets
    return finish(results, targets, args, started, secrets)


def finish(
    results: list[CheckResult],
    targets: list[Target],
    args: argparse.Namespace,
    started: datetime,
    secrets: list[Any],
) -> int:
    """Print the summary and the reports; the exit code the results call for."""
    from gatecheck.report import summary_table, write_reports

    print()
    print(summary_table(results))
    if args.report_dir is not None and results:
        run_info = {"started": started, "finished": datetime.now(UTC), "targets": targets, "secrets": secrets}
        for kind, path in write_reports(results, args.report_dir, run_info=run_info).items():
            print(f"{kind} report: {path}")
    if not results or all(r.verdict == "SKIP" for r in results):
        print("gatecheck conform: nothing was checked", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_FAILED if any(r.verdict == "FAIL" for r in results) else EXIT_OK


def pytest_args(args: argparse.Namespace, target: Target, several: bool) -> list[str]:
    """The in-process pytest command line for one target (its own JUnit file when several)."""
    suite = data_dir("conformance")
    argv = [str(suite), "-c", os.devnull, "--rootdir", str(suite), *NO_PLUGINS]
    for flag, value in (("-m", args.markexpr), ("-k", args.keyword), ("--checks", args.checks)):
        if value:
            argv += [flag, value]
    for flag, value in (("--fuzz-examples", args.fuzz_examples), ("--fuzz-seed", args.fuzz_seed)):
        if value is not None:
            argv += [flag, str(value)]
    if args.report_dir is not None:
        junit = f"junit-{target.name}.xml" if several else "junit.xml"
        argv += ["--junitxml", str(args.report_dir / junit)]
    return argv


def plan_target(target: Target, args: argparse.Namespace, out: TextIO) -> int:
    """Collect without running and print the spend; 2 when it exceeds the budget."""
    front = ConformFront(target, None)
    code = pytest.main([*pytest_args(args, target, False), "--collect-only"], plugins=[front])
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED) or front.plan is None:
        return EXIT_USAGE
    plan = front.plan
    print(
        f"{target.name}: {front.collected} checks, at most {plan.requests} requests and "
        f"{plan.output_tokens} output tokens (budget {target.max_requests} requests, "
        f"{target.max_output_tokens} output tokens per request)",
        file=out,
    )
    if plan.requests > target.max_requests:
        print(
            f"gatecheck conform: {target.name}: the run would exceed --budget-requests "
            f"{target.max_requests}; it would refuse to start",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return EXIT_OK


def check_list() -> str:
    """Every check: id, area, what it checks, where it is documented, and its rules' provenance."""
    from gatecheck.rules import rule

    load_all()
    width = max(len(c) for c in CHECKS)
    lines = []
    for c in CHECKS.values():
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
        self.plan: Cost | None = None
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

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        from gatecheck.pytest_plugin import STATE

        state = session.config.stash[STATE]
        self.plan = state.plan
        self.collected = len(session.items)
        if self.progress is not None and not session.config.option.collectonly:
            plan = self.plan or Cost()
            print(
                f"{self.target.describe()}\n  {self.collected} checks, at most {plan.requests} requests; "
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
