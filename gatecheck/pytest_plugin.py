"""gatecheck's pytest plugin: the conformance checks as pytest items, against any target.

Loaded explicitly by ``conformance/conftest.py`` (``pytest_plugins = ["gatecheck.pytest_plugin"]``);
there is no pytest11 entry point, so installing gatecheck adds no options to unrelated runs.

    pytest conformance --base-url http://127.0.0.1:8080 --model deepseek-v4-flash   # key: $GATECHECK_API_KEY
    pytest conformance -m "stream and not slow"                                       # embedded gateway

Options: every target option of ``gatecheck.config.TARGET_OPTIONS`` (``--base-url``, ``--api-key``,
``--model``, ``--profile``, ``--rpm``, ``--tpm``, ``--budget-requests``...) plus ``--target FILE``,
``--report-dir``, ``--fuzz-examples``, ``--fuzz-seed``, ``--checks``, ``--deadline``,
``--no-preflight``, ``--expected-failures`` and ``--record``, each also as an ini value
``gatecheck_<name>`` (keys excepted: they never go in a file). Precedence: command line > ini >
environment (``GATECHECK_*``) > target file > defaults. ``read_options`` is the one function that
reads them, raising ``pytest.UsageError`` with the valid values.

A conformance module declares ``NAME = CheckGroup("area", ...)``; each such attribute becomes one
``CheckItem`` per check, named by the check id (so JUnit test names are check ids) and marked with
its area (and ``slow``/``costly``). With no base URL the embedded reference gateway is started on
first use and stopped at the end of the session. Verdicts: FAIL fails the item with the formatted
failure, SKIP skips it with the reason, WARN passes it, shown as ``W``/``warned`` and listed with
its message in a "gatecheck warnings" section; a FAIL the expected-failures file lists is XFAIL
(``pytest.xfail`` with the entry's reason), a listed check that passes or an expired entry fails the
item (``gatecheck.expected``). ``--record DIR`` runs the session on a ``Recorder`` wire and writes
one cassette per check in ``DIR/<target>/`` at the end (``gatecheck.cassettes``). With
``--report-dir`` (checked writable before anything runs), JUnit XML goes to ``<dir>/junit.xml`` and
the JSON/Markdown/HTML reports are written there at the end. The JUnit file (this one or any
``--junitxml``) carries the target's name in its suite and class names and shows each WARN and XFAIL
as a property and a ``<system-out>`` line (``gatecheck.report.junit``). ``gatecheck conform`` drives
the same plugin through hooks of its own: ``pytest_gatecheck_target`` (give the target),
``pytest_gatecheck_result`` (receive each verdict) and ``pytest_gatecheck_notice`` (a line saying
what the run waits for, or why it stopped).

Before the first check the target gets its preflight (``gatecheck.preflight``: one cheap request
per key; a configuration mistake is a usage error, one line) unless ``--no-preflight``. The run
is bounded by ``--deadline`` minutes (default 30): past it the remaining checks are "not
checked: deadline". An interrupted run (Ctrl-C) still writes its reports, marked interrupted.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gatecheck.cassettes import Recorder
from gatecheck.checks import (
    AREAS,
    EXTRA_MARKERS,
    Check,
    CheckGroup,
    RunSettings,
    Session,
    applicable,
    load_all,
    plan_cost,
    run_check,
)
from gatecheck.checks.base import Cost
from gatecheck.checks.context import Wire
from gatecheck.checks.runner import run_order
from gatecheck.checks.session import open_session, plan_settings
from gatecheck.config import TARGET_OPTIONS, Target, load_target, option_arguments
from gatecheck.errors import ConfigError
from gatecheck.expected import ExpectedFailures, load_expected
from gatecheck.preflight import PreflightError, preflight
from gatecheck.profiles import Profile, load_profile
from gatecheck.redaction import Secret
from gatecheck.report.conformance import JUNIT_FILE, check_writable, write_files
from gatecheck.report.junit import annotate_junit
from gatecheck.results import CheckResult

DEFAULT_FUZZ_EXAMPLES = 10
DEFAULT_DEADLINE_MIN = 30.0
_SECRET_DESTS = ("api_key", "api_key_2")
_SUITE_OPTIONS: tuple[tuple[str, str, str, str], ...] = (
    (
        "--target",
        "target",
        "append",
        "target file (TOML) with the deployment's URL, models, claims and limits",
    ),
    ("--report-dir", "report_dir", "store", "write junit.xml, results.json, matrix.md and matrix.html here"),
    (
        "--fuzz-examples",
        "fuzz_examples",
        "store",
        f"requests per fuzz check (default {DEFAULT_FUZZ_EXAMPLES})",
    ),
    ("--fuzz-seed", "fuzz_seed", "store", "seed of the fuzz checks (default: random, printed in the header)"),
    ("--checks", "checks", "store", "run only these check ids (comma-separated)"),
    (
        "--deadline",
        "deadline",
        "store",
        f"minutes the whole run may take (default {DEFAULT_DEADLINE_MIN:g}); past it the rest is not checked",
    ),
    (
        "--no-preflight",
        "no_preflight",
        "store_true",
        "skip the one cheap request per key sent before the run",
    ),
    (
        "--expected-failures",
        "expected_failures",
        "store",
        "TOML file of known deviations: a listed FAIL is XFAIL, a listed check that passes fails as stale",
    ),
    (
        "--record",
        "record",
        "store",
        "record every exchange, one cassette per check, in DIR/<target>/ (gatecheck replay DIR re-judges it)",
    ),
)


@dataclass(frozen=True)
class SuiteOptions:
    """Everything the plugin was told, validated."""

    target: Target
    profile: Profile
    report_dir: Path | None
    fuzz_examples: int
    fuzz_seed: int
    checks: frozenset[str] | None
    deadline_s: float = DEFAULT_DEADLINE_MIN * 60
    preflight: bool = True
    expected: ExpectedFailures | None = None
    """The known deviations that apply to this target (``--expected-failures`` or the target file)."""
    record_dir: Path | None = None
    """Where this target's cassettes go (``--record DIR``: ``DIR/<target>``)."""


@dataclass
class SuiteState:
    """The run's state (in ``config.stash``): options, the lazily opened session, the verdicts."""

    options: SuiteOptions
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    results: list[CheckResult] = field(default_factory=list)
    not_applicable: list[Check] = field(default_factory=list)
    plan: Cost | None = None
    written: dict[str, Path] = field(default_factory=dict)
    secrets: tuple[Secret, ...] = ()
    interrupted: bool = False
    notify: Callable[[str], None] = print
    live_verdicts: list[tuple[str, str]] = field(default_factory=list)
    """Each check's verdict before the expected failures were applied (what a recording keeps)."""
    recorded: list[Path] = field(default_factory=list)
    _stack: ExitStack = field(default_factory=ExitStack)
    _session: Session | None = None
    _settings: RunSettings | None = None

    def session(self) -> Session:
        """The session on the target, opened on first use (starting the embedded gateway if needed)."""
        if self._session is None:
            record_dir = self.options.record_dir
            self._settings = RunSettings(
                fuzz_examples=self.options.fuzz_examples,
                fuzz_seed=self.options.fuzz_seed,
                deadline_s=self.options.deadline_s,
                notify=self.notify,
                wire=Recorder(record_dir) if record_dir is not None else Wire(),
            )
            self._session = self._stack.enter_context(open_session(self.options.target, self._settings))
            self.secrets = self._session.secrets
        return self._session

    def judged(self, result: CheckResult) -> CheckResult:
        """``result`` as the expected failures judge it (XFAIL, a stale entry's FAIL...), noted live."""
        self.live_verdicts.append((result.check_id, result.verdict))
        return result if self.options.expected is None else self.options.expected.apply(result)

    def save_recording(self) -> None:
        """Write the cassettes of a recorded run (``--record``)."""
        wire = None if self._settings is None else self._settings.wire
        if isinstance(wire, Recorder) and self._settings is not None:
            self.recorded = wire.save(
                self.options.target, self._settings, self.live_verdicts, interrupted=self.interrupted
            )

    def close(self) -> None:
        """Close the session (and stop the embedded gateway)."""
        self._stack.close()
        self._session = None


STATE = pytest.StashKey[SuiteState]()


class GatecheckHooks:
    """Hooks ``gatecheck conform`` implements to drive the suite."""

    @pytest.hookspec(firstresult=True)
    def pytest_gatecheck_target(self, config: pytest.Config) -> Target | None:
        """Return the Target to check instead of reading the target options."""

    @pytest.hookspec
    def pytest_gatecheck_result(self, result: CheckResult) -> None:
        """Called with every check's verdict as soon as it is known."""

    @pytest.hookspec
    def pytest_gatecheck_notice(self, config: pytest.Config, line: str) -> None:
        """Called with a one-line notice: what the run waits for and how long, or why it stopped."""


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(GatecheckHooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(
        "gatecheck", "gatecheck conformance (precedence: command line > ini > env > file)"
    )
    for option in TARGET_OPTIONS:
        group.addoption(option.flag, **{**option_arguments(option), "dest": f"gatecheck_{option.dest}"})
        if option.dest not in _SECRET_DESTS:
            kind = {"append": "linelist", "flag": "bool"}.get(option.kind, "string")
            parser.addini(f"gatecheck_{option.dest}", option.help, type=kind, default=None)  # type: ignore[arg-type]
    for flag, dest, action, help_text in _SUITE_OPTIONS:
        group.addoption(flag, dest=f"gatecheck_{dest}", default=None, action=action, help=help_text)
        kind = "bool" if action == "store_true" else "string"
        parser.addini(f"gatecheck_{dest}", help_text, type=kind, default=None)  # type: ignore[arg-type]


def _given(config: pytest.Config, dest: str) -> Any:
    """An option's value from the command line, else its ini twin, else None."""
    value = config.getoption(f"gatecheck_{dest}")
    if value in (None, []) and dest not in _SECRET_DESTS:
        value = config.getini(f"gatecheck_{dest}") or None
    return value


def read_options(config: pytest.Config) -> SuiteOptions:
    """The plugin's options, validated; a bad one is a ``pytest.UsageError`` naming what is allowed."""
    try:
        target = config.hook.pytest_gatecheck_target(config=config) or _target_from_options(config)
        profile = load_profile(target.profile)
    except ConfigError as exc:
        raise pytest.UsageError(f"gatecheck: {exc}") from None
    checks = _given(config, "checks")
    wanted = frozenset(c.strip() for c in checks.split(",") if c.strip()) if checks else None
    unknown = sorted((wanted or frozenset()) - set(load_all()))
    if unknown:
        raise pytest.UsageError(
            f"gatecheck: --checks: unknown check ids {unknown}; see gatecheck conform --list"
        )
    report_dir = _given(config, "report_dir")
    record = _given(config, "record")
    return SuiteOptions(
        target=target,
        profile=profile,
        report_dir=Path(report_dir) if report_dir else None,
        fuzz_examples=_count(_given(config, "fuzz_examples"), "--fuzz-examples", DEFAULT_FUZZ_EXAMPLES, 0),
        fuzz_seed=_count(_given(config, "fuzz_seed"), "--fuzz-seed", random.randrange(2**32), 0),
        checks=wanted,
        deadline_s=_minutes(_given(config, "deadline"), "--deadline", DEFAULT_DEADLINE_MIN) * 60,
        preflight=not _given(config, "no_preflight"),
        expected=_expected(_given(config, "expected_failures") or target.expected_failures, target.name),
        record_dir=Path(record) / target.name if record else None,
    )


def _expected(path: str | None, target: str) -> ExpectedFailures | None:
    """The expected-failures file's entries for ``target``; a mistake in it is a usage error."""
    if path is None:
        return None
    try:
        return load_expected(path).for_target(target)
    except ConfigError as exc:
        raise pytest.UsageError(f"gatecheck: {exc}") from None


def _minutes(value: Any, flag: str, default: float) -> float:
    if value is None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = 0.0
    if not 0 < number <= 7 * 24 * 60:
        raise pytest.UsageError(f"gatecheck: {flag} = {value!r}; allowed: minutes above 0 (at most a week)")
    return number


def _target_from_options(config: pytest.Config) -> Target:
    files = _given(config, "target") or []
    files = [files] if isinstance(files, str) else files
    if len(files) > 1:
        raise pytest.UsageError(
            "gatecheck: --target: one target per pytest run (gatecheck conform compares several)"
        )
    cli = {option.dest: _given(config, option.dest) for option in TARGET_OPTIONS}
    return load_target(files[0] if files else None, cli)


def _count(value: Any, flag: str, default: int, low: int) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = low - 1
    if number < low:
        raise pytest.UsageError(f"gatecheck: {flag} = {value!r}; allowed: an integer >= {low}")
    return number


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    for area, text in {**AREAS, **EXTRA_MARKERS}.items():
        config.addinivalue_line("markers", f"{area}: {text}")
    options = read_options(config)
    config.stash[STATE] = SuiteState(
        options, notify=lambda line: config.hook.pytest_gatecheck_notice(config=config, line=line)
    )
    if options.report_dir is not None and not config.option.collectonly:
        try:
            check_writable(options.report_dir)
        except ConfigError as exc:
            raise pytest.UsageError(f"gatecheck: {exc}") from None
    if options.report_dir is not None and not config.option.xmlpath:
        config.option.xmlpath = str(options.report_dir / JUNIT_FILE)


def pytest_report_header(config: pytest.Config) -> list[str]:
    options = config.stash[STATE].options
    target = options.target
    lines = [
        f"gatecheck target: {target.describe()}",
        f"gatecheck profile: {options.profile.name} ({options.profile.description})",
        f"gatecheck budget: {target.max_requests} requests, {target.max_output_tokens} output tokens each; "
        f"fuzz: {options.fuzz_examples} examples, seed {options.fuzz_seed}",
    ]
    if options.expected is not None:
        count = len(options.expected.entries)
        lines.append(f"gatecheck expected failures: {options.expected.path} ({count} entries apply)")
    if options.record_dir is not None:
        lines.append(f"gatecheck recording to: {options.record_dir}")
    return lines


class CheckItem(pytest.Item):
    """One check as a pytest item; its name is the check id."""

    def __init__(self, *, check: Check, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check
        for marker in check.all_markers:
            self.add_marker(marker)

    def runtest(self) -> None:
        state = self.config.stash[STATE]
        result = state.judged(run_check(state.session(), self.check))
        state.results.append(result)
        self.config.hook.pytest_gatecheck_result(result=result)
        self.user_properties.append(("verdict", result.verdict))
        self.user_properties.append(("citation", result.citation))
        if result.verdict == "FAIL":
            raise CheckFailed(result)
        if result.verdict == "SKIP":
            pytest.skip(result.message)
        if result.verdict == "XFAIL":
            pytest.xfail(result.message.split("\n", 1)[0])

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, CheckFailed):
            result = excinfo.value.result
            crash = result.extra.get("internal_error")
            return f"{result.message}\n\n{crash}" if crash else result.message
        return str(super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.check.id}: {self.check.doc}"


class CheckFailed(Exception):
    """A check's FAIL verdict, carried to ``repr_failure``."""

    def __init__(self, result: CheckResult) -> None:
        super().__init__(result.message)
        self.result = result


def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> list[CheckItem] | None:
    if not isinstance(obj, CheckGroup):
        return None
    return [CheckItem.from_parent(collector, name=c.id, check=c) for c in obj.checks()]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash[STATE]
    kept, dropped = [], []
    for item in items:
        check = item.check if isinstance(item, CheckItem) else None
        wanted = check is None or state.options.checks is None or check.id in state.options.checks
        if check is not None and not applicable(check, state.options.profile):
            state.not_applicable.append(check)
            dropped.append(item)
        elif wanted:
            kept.append(item)
        else:
            dropped.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = in_run_order(kept, state.options.target)


def in_run_order(items: list[pytest.Item], target: Target) -> list[pytest.Item]:
    """The runner's order (``run_order``): heavy checks last, rate-limit checks late on a shared key."""
    dedicated = target.base_url is None or target.api_key_2 is not None
    return sorted(
        items, key=lambda i: run_order(i.check, dedicated) if isinstance(i, CheckItem) else (False, False)
    )


def pytest_collection_finish(session: pytest.Session) -> None:
    state = session.config.stash[STATE]
    checks = [i.check for i in session.items if isinstance(i, CheckItem)]
    target = state.options.target
    state.plan = plan_cost(checks, plan_settings(target, state.options.fuzz_examples))
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and checks:
        reporter.write_line(
            f"gatecheck plan: {len(checks)} checks, at most {state.plan.requests} requests and "
            f"{state.plan.output_tokens} output tokens (budget {target.max_requests} requests)"
        )
    if session.config.option.collectonly:
        return
    if state.plan.requests > target.max_requests:
        raise pytest.UsageError(
            f"gatecheck: this run would send up to {state.plan.requests} requests, over the budget of "
            f"{target.max_requests} (--budget-requests); raise it or select fewer checks (-m, -k, --checks)"
        )
    if checks and state.options.preflight:
        try:
            preflight(target)
        except PreflightError as exc:
            raise pytest.UsageError(f"gatecheck: {exc}") from None


def pytest_gatecheck_notice(config: pytest.Config, line: str) -> None:
    """Under plain pytest, a notice goes to the terminal at once (past output capturing)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    capture = config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture is not None else nullcontext():
        reporter.write_line(f"gatecheck: {line}")


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> tuple[str, str, Any] | None:
    if report.when == "call" and ("verdict", "WARN") in report.user_properties:
        return "warned", "W", ("WARN", {"yellow": True})
    return None


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None:
        return
    warned = [r for r in state.results if r.verdict == "WARN"]
    if warned:
        terminalreporter.section("gatecheck warnings", sep="=", yellow=True)
        for result in warned:
            terminalreporter.write_line(f"{result.check_id}:\n{result.message}\n")
    for check in state.not_applicable:
        rules = ", ".join(check.profile_rules)
        terminalreporter.write_line(
            f"gatecheck: {check.id} does not apply under profile {state.options.profile.name} ({rules}: off)"
        )
    for kind, path in state.written.items():
        terminalreporter.write_line(f"gatecheck {kind} report: {path}")
    if state.recorded:
        terminalreporter.write_line(f"gatecheck recording: {state.recorded[0].parent}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int | pytest.ExitCode) -> None:
    state = session.config.stash.get(STATE, None)
    if state is None:
        return
    state.interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
    try:
        state.save_recording()
        if state.options.report_dir is not None and state.results:
            from gatecheck.report import write_reports

            state.written = write_reports(state.results, state.options.report_dir, run_info=run_info(state))
    finally:
        state.close()


def run_info(state: SuiteState) -> dict[str, object]:
    """The report header of this run (targets without keys; the keys listed only to be masked)."""
    expected = state.options.expected
    target = replace(state.options.target, expected_failures=str(expected.path) if expected else None)
    return {
        "started": state.started,
        "finished": datetime.now(UTC),
        "profile": state.options.profile.name,
        "targets": [target],
        "secrets": list(state.secrets),
        "interrupted": state.interrupted,
    }


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is not None:
        try:
            finish_junit(config, state)
        finally:
            state.close()


def finish_junit(config: pytest.Config, state: SuiteState) -> None:
    """Put the target's name and the WARNs into the JUnit file pytest wrote (``annotate_junit``).

    Runs at unconfigure, after pytest's own writer. Without a report directory, the request
    bodies the failures' curl commands read are saved next to the JUnit file instead.
    """
    xmlpath = getattr(config.option, "xmlpath", None)
    if not xmlpath or hasattr(config, "workerinput"):
        return
    path = Path(os.path.expandvars(xmlpath)).expanduser().absolute()
    if not path.is_file():
        return
    secrets = list(state.secrets)
    annotate_junit(path, state.options.target.name, state.results, secrets)
    if state.options.report_dir is None:
        write_files(state.results, path.parent, secrets)
