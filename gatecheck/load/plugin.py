"""gatecheck's locust plugin: options, measurement pipeline, distributed merge, reports and gates.

Nothing happens at import time. A locustfile adds the options from its
``init_command_line_parser`` listener (``add_arguments(parser)``, the one listener locust needs at
module level) and attaches the plugin from its ``init`` listener (``register(environment)``)::

    from locust import events
    from gatecheck.load import plugin
    from gatecheck.load.users import ChatStreamUser, ...   # the users the plugin may pick

    @events.init_command_line_parser.add_listener
    def _options(parser): plugin.add_arguments(parser)

    @events.init.add_listener
    def _attach(environment, **_kw): plugin.register(environment)

Hooks used (documented in ``locust/event.py``):

- ``init_command_line_parser`` (``add_arguments``): our options; the key never goes to the web UI;
  locust's parsed options are checked before locust forks or spawns anything (``-u``, ``-r``,
  ``--processes``, ``-t``: one line, exit 2) and ``--processes`` gets a free loopback master port
  (locust's default 5557 is shared by every run on the host);
- ``init`` (via ``register``): on the master or the single process, validate the options (a bad
  one ends the run with one line and exit code 2), run the preflight (``gatecheck.preflight``),
  pick the user class, set the ramp shape, size the limits run and give every scenario a run
  time, add the web UI's "LLM metrics" tab;
- ``test_start``: read the settings on every process (workers get them from the master here),
  reset the measurements and the guard (budget share, early stop, back-off), ``gc.freeze()``;
  with ``--upstream``, every process with users checks the harness's clock and polls its log
  (``gatecheck.load.overhead``), matching it with its own streams until ``test_stop``;
- ``request`` (fired by :meth:`GatecheckPlugin.record`): ONE event per request, at its end, timed
  end to end; TTFT, ITL, TPOT and TTFC live in our histograms (summary, web UI tab);
- ``spawning_complete`` / ``reset_stats``: locust's ``--reset-stats`` (and the web UI's button)
  reset our measurements too; workers are told with a ``gatecheck_reset`` message and their
  reports carry an epoch so the master drops what was measured before;
- ``report_to_master`` / ``worker_report``: workers ship their raw HDR histograms and counts as
  deltas; the master adds them (percentiles are never averaged); ``gatecheck_stop`` and
  ``gatecheck_budget`` messages tell the master a worker stopped early or spent its budget share;
- ``quitting``: the master (or single process) writes the summary and the report page, runs the
  SLO gate, the baseline comparison and the limits verdict, decides the outcome and sets
  ``environment.process_exit_code``: 2 when the run stopped early or measured nothing, 1 when no
  request succeeded or a gate failed, else 0 (without any gate: 1 when any request failed).
"""

from __future__ import annotations

import gc
import itertools
import json
import logging
import math
import os
import socket
import sys
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
from locust.exception import LocustError
from locust.runners import STATE_MISSING, MasterRunner, WorkerRunner

from gatecheck._types import JSONObject
from gatecheck.assemble import ChatStreamAssembler, MessageStreamAssembler, Violation
from gatecheck.config import option_arguments
from gatecheck.errors import ConfigError, GatecheckError
from gatecheck.load.guard import Guard, budget_share
from gatecheck.load.limits import LimitKey, ProbeRecord
from gatecheck.load.options import (
    LOAD_OPTIONS,
    PARENT_PID_ENV,
    LoadSettings,
    check_run_shape,
    http_options,
    limits_secret,
    public_url,
    read_settings,
    target_options,
)
from gatecheck.load.overhead import PAGE, POLL_S, NonceSource, OverheadTracker, clock_check
from gatecheck.load.shape import RampShape
from gatecheck.load.slo import compare, evaluate, is_good
from gatecheck.load.stats import LoadStats
from gatecheck.load.summary import (
    live_rows,
    outcome_section,
    ramp_group,
    read_summary,
    run_summary,
    write_summary,
)
from gatecheck.load.timing import RequestMetrics, StreamTiming, derive, public_code, public_text
from gatecheck.load.workload import Dialect
from gatecheck.redaction import RedactingFilter, Secret

__all__ = ["GatecheckPlugin", "add_arguments", "plugin_for", "register"]

log = logging.getLogger("gatecheck.load")
_WIRE_KEY = "gatecheck"
_TOTAL_USERS = "gatecheck_total_users"
"""Set on the master's parsed options at test start; travels to workers with the spawn message."""
_WORKERS = "gatecheck_workers"
"""The number of workers at test start (budget shares), sent the same way."""
_MSG_RESET, _MSG_STOP, _MSG_BUDGET = "gatecheck_reset", "gatecheck_stop", "gatecheck_budget"
_MSG_DRAIN = "gatecheck_drain"
_DRAIN_SLACK_S = 10.0
"""How long past ``--stop-timeout`` the master waits for the workers' last reports at the end."""
_LOCUST_DEFAULT_MASTER_PORT = 5557
_WEB_TAB = "gatecheck-llm"
_WEB_COLUMNS = (
    ("metric", "Metric"),
    ("count", "Count"),
    ("mean", "Mean"),
    ("p50", "p50"),
    ("p90", "p90"),
    ("p95", "p95"),
    ("p99", "p99"),
    ("max", "Max"),
)
_LIMITS_SLACK_S = 10.0
_RESET_LEAD_S = 0.5
"""How far ahead of a distributed stats reset its cut is (the reset message must reach every worker)."""
_NOT_IN_WEB_UI = frozenset({"api_key", "api_key_2"})
"""Keys never go to the web UI's page (nor do ``--header`` and ``--insecure``: repeatable, a flag)."""
_FINAL_POLL_S = 2.0
"""How long the end of a run waits for the harness's records of the last streams."""
_PLUGINS: weakref.WeakKeyDictionary[Any, GatecheckPlugin] = weakref.WeakKeyDictionary()


class RequestFailed(Exception):
    """The outcome of a failed request as locust's failure table shows it (status and error code)."""


def _fail(message: str) -> None:
    """One line on stderr, exit code 2: a configuration the run cannot start with."""
    print(f"gatecheck: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def add_arguments(parser: Any) -> None:
    """Add gatecheck's options to locust's parser (command line, config files, web UI)."""
    parser.add_argument(
        "--target",
        default=None,
        metavar="FILE",
        help="gatecheck target file (TOML): model, key variable, limits, timeouts",
    )
    for option in target_options():
        parser.add_argument(
            option.flag,
            **option_arguments(option),
            include_in_web_ui=option.kind == "value" and option.field not in _NOT_IN_WEB_UI,
        )
    for load_option in LOAD_OPTIONS:
        parser.add_argument(
            load_option.flag,
            dest=load_option.dest,
            default=None if load_option.multiple else load_option.default,
            choices=load_option.choices,
            action="append" if load_option.multiple else "store",
            metavar=None if load_option.choices else load_option.metavar,
            help=load_option.help,
            include_in_web_ui=not load_option.multiple,
        )
    parser.parse_args = _checked_parse(parser.parse_args)


def _checked_parse(parse: Callable[..., Any]) -> Callable[..., Any]:
    """Locust's ``parse_args``, then our checks of its run options and a free master port."""

    def parse_args(*args: Any, **kwargs: Any) -> Any:
        options = parse(*args, **kwargs)
        try:
            check_run_shape(options.num_users, options.spawn_rate, options.processes, options.run_time)
        except ConfigError as exc:
            _fail(str(exc))
        if options.processes and not options.worker:
            _free_master_port(options)
        return options

    return parse_args


def _free_master_port(options: Any) -> None:
    """``--processes`` without a chosen port: a free port on the loopback interface, so another
    run on the host never meets this run's workers (or this master theirs)."""
    if options.master_bind_port != _LOCUST_DEFAULT_MASTER_PORT:
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    options.master_bind_port = options.master_port = port
    if options.master_bind_host == "*":
        options.master_bind_host = "127.0.0.1"


def register(environment: Any) -> GatecheckPlugin:
    """Attach the plugin to a locust environment (call it from an ``init`` listener)."""
    plugin = GatecheckPlugin(environment)
    _PLUGINS[environment] = plugin
    plugin.attach()
    return plugin


def plugin_for(environment: Any) -> GatecheckPlugin:
    """The plugin registered on ``environment``."""
    try:
        return _PLUGINS[environment]
    except KeyError:
        raise LocustError(
            "gatecheck's plugin is not registered: call gatecheck.load.plugin.register(environment) "
            "from an init listener in the locustfile"
        ) from None


def _user_class_for(settings: LoadSettings) -> str:
    if settings.scenario == "rate":
        return "RateUser"
    if settings.scenario == "limits":
        return "LimitsUser"
    api = "Messages" if settings.dialect == "anthropic" else "Chat"
    return f"{api}StreamUser" if settings.stream else f"{api}User"


def limits_run_time_s(settings: LoadSettings) -> int:
    """A run time long enough for every key's probes at their slowest (keys run side by side)."""
    longest = 0.0
    for key in settings.limits_keys:
        plans = settings.probe_plans(key)
        # per probe: the burst at its longest, the Retry-After wait at its cap (as long), the
        # sustain phase, the last requests in flight
        total = sum(2 * p.burst_timeout_s + p.sustain_s + settings.total_timeout_s for p in plans)
        longest = max(longest, total + sum(p.window_s for p in plans))
    return math.ceil(longest + _LIMITS_SLACK_S)


class GatecheckPlugin:
    """Per-process state of a load run: settings, measurements, and the hooks that move them."""

    def __init__(self, environment: Any) -> None:
        self.environment = environment
        self.stats = LoadStats()
        self.guard = Guard(budget=0)
        self._settings: LoadSettings | None = None
        self._user_index = itertools.count()
        self._streams = itertools.count()
        self._limits_queue: list[LimitKey] = []
        self._limits_pending = 0
        self._start_wall: float | None = None
        self._count_from = 0.0
        self._start_ns = 0
        self._stop_wall: float | None = None
        self._sampler: Any = None
        self._redactor = RedactingFilter()
        self._secrets: list[Secret] = []
        self._epoch = 0
        self._stop_reason: str | None = None
        self._budget_note: str | None = None
        self._budget_told = False
        self._budget_workers: set[str] = set()
        self._draining = False
        self._final_reports: set[str] = set()
        self.run_name = ""
        self.workers: set[str] = set()
        self.nonces: NonceSource | None = None
        """This process's nonces while the gateway overhead is measured (``--upstream``), else None."""
        self._tracker: OverheadTracker | None = None
        self._control: Any = None
        self._poller: Any = None
        self._http_options: dict[str, Any] | None = None

    # --- wiring --------------------------------------------------------------------------------

    @property
    def is_worker(self) -> bool:
        """This process runs users for a master."""
        return isinstance(self.environment.runner, WorkerRunner)

    @property
    def is_master(self) -> bool:
        """This process is the master of a distributed run."""
        return isinstance(self.environment.runner, MasterRunner)

    def attach(self) -> None:
        """Add the listeners; on the master (or single process) check the options first."""
        events = self.environment.events
        events.test_start.add_listener(self._on_test_start)
        events.test_stop.add_listener(self._on_test_stop)
        events.report_to_master.add_listener(self._on_report_to_master)
        events.worker_report.add_listener(self._on_worker_report)
        events.quitting.add_listener(self._on_quitting)
        for handler in logging.getLogger().handlers:
            handler.addFilter(self._redactor)
        runner = self.environment.runner
        if self.is_worker:
            runner.register_message(_MSG_RESET, self._on_reset_message)
            runner.register_message(_MSG_DRAIN, self._on_drain_message, concurrent=True)
            return
        events.spawning_complete.add_listener(self._on_spawning_complete)
        events.reset_stats.add_listener(self._on_reset_stats)
        if self.is_master:
            runner.register_message(_MSG_STOP, self._on_stop_message)
            runner.register_message(_MSG_BUDGET, self._on_budget_message)
        self._prepare()

    def _read(self) -> LoadSettings:
        options = vars(self.environment.parsed_options)
        return read_settings({**options, "host": self.environment.host or options.get("host")})

    def _prepare(self) -> None:
        """Validate, preflight, then shape the run for its scenario (user class, ramp, limits)."""
        options = self.environment.parsed_options
        try:
            settings = self._read()
            if settings.scenario == "limits" and self.is_master:
                raise ConfigError("--scenario", "limits", "a single process (no --master/--processes)")
            if settings.baseline_path is not None:
                read_summary(Path(settings.baseline_path))
            self._check_run_time(settings, options)
        except ConfigError as exc:
            _fail(str(exc))
        for secret in settings.secrets():
            self._keep_secret(secret)
        if settings.proxy is not None:
            print(f"gatecheck: through the proxy {public_url(settings.proxy)}", flush=True)
        if settings.preflight:
            self._preflight(settings)
        self.run_name = settings.run_name or f"load-{settings.scenario}-{time.strftime('%Y%m%d-%H%M%S')}"
        if getattr(options, "html_file", None) is None:
            options.html_file = str(settings.report_dir / f"{self.run_name}.locust.html")
        if not getattr(options, "user_classes", None):
            self._pick_user_class(_user_class_for(settings))
        if settings.scenario == "ramp":
            self._set_ramp_shape(settings)
        if settings.scenario == "limits":
            options.num_users = options.spawn_rate = len(settings.limits_keys)
            if not options.run_time:
                options.run_time = limits_run_time_s(settings)
        self._extend_web_ui()
        self._watch_parent()
        # locust arms its --run-time timer against the event loop's cached clock, which is stale by
        # the whole start-up (about a second): refresh it so a short -t is not cut short.
        gevent.get_hub().loop.update_now()

    @staticmethod
    def _check_run_time(settings: LoadSettings, options: Any) -> None:
        """A headless run ends by itself: a run time, the ramp's last step or the limits probes."""
        bounded = options.run_time or settings.scenario in ("ramp", "limits")
        if getattr(options, "headless", False) and not bounded:
            raise ConfigError("-t/--run-time", "(not set)", "a run time for a headless run, e.g. -t 60s")

    def _preflight(self, settings: LoadSettings) -> None:
        """The shared preflight (``gatecheck.preflight``): a configuration mistake is one line, exit 2."""
        from gatecheck.preflight import preflight

        try:
            line = preflight(settings.target)
        except GatecheckError as exc:
            _fail(f"preflight: {self.public(str(exc))}")
        print(f"gatecheck {line}", flush=True)

    def _keep_secret(self, secret: Secret) -> None:
        """Scrub this key from logs, error codes and reports from now on."""
        if secret not in self._secrets:
            self._secrets.append(secret)
            self._redactor.add(secret)

    def public(self, text: str) -> str:
        """Target-provided text with every known key removed (for messages and reports)."""
        return public_text(text, self._secrets)

    def _pick_user_class(self, name: str) -> None:
        chosen = [cls for cls in self.environment.user_classes if cls.__name__ == name]
        if not chosen:
            raise LocustError(f"the locustfile must import gatecheck.load.users.{name}")
        self.environment.user_classes[:] = chosen

    def _set_ramp_shape(self, settings: LoadSettings) -> None:
        spawn_rate = max(float(self.environment.parsed_options.spawn_rate or 1), float(settings.ramp.step))
        shape = RampShape(settings.ramp, spawn_rate)
        shape.runner = self.environment.runner
        self.environment.shape_class = shape

    def _extend_web_ui(self) -> None:
        """The web UI's "LLM metrics" tab: TTFT, TTFC, ITL, TPOT, E2E, TTFB, tokens/s (locust's own
        table shows one row per request type, timed end to end)."""
        web_ui = getattr(self.environment, "web_ui", None)
        if web_ui is None:
            return
        from flask import Response, request

        web_ui.template_args["extended_tabs"] = [{"title": "LLM metrics", "key": _WEB_TAB}]
        web_ui.template_args["extended_tables"] = [
            {"key": _WEB_TAB, "structure": [{"key": k, "title": t} for k, t in _WEB_COLUMNS]}
        ]

        def with_llm_metrics(response: Response) -> Response:
            if not request.path.endswith("/stats/requests") or not response.is_json:
                return response
            data = response.get_json()
            data["extended_stats"] = [{"key": _WEB_TAB, "data": live_rows(self.stats)}]
            response.set_data(json.dumps(data))
            return response

        web_ui.app.after_request(with_llm_metrics)

    def _watch_parent(self) -> None:
        """Under ``gatecheck load``: quit when that process is gone (killed without a chance to stop
        us), so no run outlives the command that started it."""
        expected = os.environ.get(PARENT_PID_ENV)
        if not expected or not expected.isdigit():
            return

        def watch() -> None:
            while os.getppid() == int(expected):
                gevent.sleep(0.5)
            log.error("gatecheck: gatecheck load (pid %s) is gone; stopping the run", expected)
            self.environment.runner.quit()

        gevent.spawn(watch)

    def _on_test_start(self, environment: Any, **_kw: Any) -> None:
        try:
            self._settings = self._read()
        except ConfigError as exc:
            log.error("gatecheck: %s", exc)
            self._settings = None
            return
        settings = self._settings
        for secret in settings.secrets():
            self._keep_secret(secret)
        self._http_options = None
        self.stats = LoadStats()
        self.workers = set()
        self._start_wall, self._start_ns, self._stop_wall = time.time(), time.perf_counter_ns(), None
        self._count_from = self._start_wall + settings.warmup_s
        self._epoch = 0
        self._stop_reason = self._budget_note = None
        self._budget_told = False
        self._budget_workers = set()
        self._draining = False
        self._final_reports = set()
        self._limits_queue = list(settings.limits_keys)
        self._limits_pending = len(self._limits_queue)
        runner = environment.runner
        options = environment.parsed_options
        if not self.is_worker:
            setattr(options, _TOTAL_USERS, int(runner.target_user_count or 1))
            setattr(options, _WORKERS, int(runner.worker_count) if self.is_master else 1)
            self._sampler = gevent.spawn(self._sample_users)
        workers = int(getattr(options, _WORKERS, 1) or 1)
        index = int(getattr(runner, "worker_index", 0) or 0) if self.is_worker else 0
        self.guard = Guard(budget=budget_share(settings.budget, workers, index))
        if settings.upstream is not None and not self.is_master:
            self._start_overhead(settings.upstream)
        gc.collect()
        gc.freeze()

    def _on_test_stop(self, environment: Any, **_kw: Any) -> None:
        self._stop_wall = time.time()
        self._finish_overhead()
        if self._sampler is not None:
            self._sampler.kill(block=False)
            self._sampler = None
        if self.is_master and self._settings is not None:
            self._drain()

    def _drain(self) -> None:
        """The end of a distributed run: have every worker stop its users and report what it has
        measured since its last report, and wait for those reports. Locust's own quit waits 0.5 s
        for them, and a busy machine misses that: the last seconds of the run went missing."""
        runner = self.environment.runner
        workers = {client.id for client in runner.clients.all if client.state != STATE_MISSING}
        runner.send_message(_MSG_DRAIN, None)
        deadline = time.monotonic() + float(self.environment.stop_timeout or 0) + _DRAIN_SLACK_S
        while not workers <= self._final_reports and time.monotonic() < deadline:
            gevent.sleep(0.05)
        missing = workers - self._final_reports
        if missing:
            log.error(
                "gatecheck: no last report from %d worker(s): their last seconds are missing", len(missing)
            )

    def _on_drain_message(self, environment: Any, msg: Any, **_kw: Any) -> None:
        runner = environment.runner
        runner.stop()
        self._draining = True
        runner._send_stats()  # locust's own report (ours rides on it, marked final): sent now, not at quit

    def _sample_users(self) -> None:
        while True:
            self.stats.series.sample_users(time.time(), int(self.environment.runner.user_count))
            gevent.sleep(1.0)

    def _on_report_to_master(self, client_id: str, data: dict[str, Any], **_kw: Any) -> None:
        data[_WIRE_KEY] = {"epoch": self._epoch, "stats": self.stats.to_wire(), "final": self._draining}
        self.stats = LoadStats()

    def _on_worker_report(self, client_id: str, data: dict[str, Any], **_kw: Any) -> None:
        report = data.get(_WIRE_KEY)
        if report is None:
            return
        self.workers.add(client_id)
        stats = LoadStats.from_wire(report["stats"])
        self.stats.merge(stats if report["epoch"] == self._epoch else stats.left_out())
        if report["final"]:
            self._final_reports.add(client_id)

    # --- gateway overhead (--upstream) ----------------------------------------------------------

    def _start_overhead(self, upstream: str) -> None:
        """Check the harness's clock is ours, then poll its log; else say why nothing is measured."""
        from gatecheck.upstream.control import Control, ControlError

        overhead = self.stats.overhead
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per poll otherwise
        control = Control(upstream)
        try:
            info = control.info()
            if isinstance(info.get("key"), str) and info["key"]:
                self._keep_secret(Secret(info["key"], "the harness's key"))
            overhead.log_writes = bool(info.get("log_writes"))
            reason = clock_check(lambda: int(control.info()["clock_ns"]))
        except (ControlError, KeyError, TypeError, ValueError) as exc:
            reason = (
                f"{self.public(str(exc))}; its control API answers loopback clients only: the load "
                "generator and the harness must share a host"
            )
        if reason is not None:
            control.close()
            overhead.not_measured(reason)
            log.warning("gatecheck: gateway overhead not measured: %s", reason)
            return
        overhead.measuring += 1
        self.nonces = NonceSource()
        self._tracker = OverheadTracker(self.nonces)
        self._control = control
        self._poller = gevent.spawn(self._poll_forever)

    def _poll_forever(self) -> None:
        while True:
            gevent.sleep(POLL_S)
            self._poll()

    def _poll(self) -> None:
        """Read the harness's new records of this process's streams and match them."""
        from gatecheck.upstream.control import ControlError

        tracker = self._tracker
        if tracker is None:
            return
        overhead = self.stats.overhead
        try:
            while True:
                cursor = tracker.cursor
                attempts, last = self._control.since(cursor, PAGE, tracker.prefix)
                tracker.take_page(attempts, last, overhead, time.monotonic(), time.monotonic_ns())
                if len(attempts) < PAGE or tracker.cursor <= cursor:
                    break
        except ControlError:
            overhead.poll_errors += 1
        tracker.expire(overhead, time.monotonic())

    def _finish_overhead(self) -> None:
        """The end: the last records (the harness closes an attempt just after its last write), then
        whatever is left unmatched is counted so."""
        tracker = self._tracker
        if tracker is None:
            return
        if self._poller is not None:
            self._poller.kill(block=False)
            self._poller = None
        deadline = time.monotonic() + _FINAL_POLL_S
        self._poll()
        while tracker.pending and time.monotonic() < deadline:
            gevent.sleep(0.1)
            self._poll()
        tracker.finish(self.stats.overhead)
        self._control.close()
        self._tracker = self._control = self.nonces = None

    # --- stats resets (--reset-stats, the web UI's button) --------------------------------------

    def _on_spawning_complete(self, user_count: int, **_kw: Any) -> None:
        if getattr(self.environment, "reset_stats", False):
            self._reset(time.time())

    def _on_reset_stats(self, **_kw: Any) -> None:
        self._reset(time.time())

    def _reset(self, wall_s: float) -> None:
        """Forget what was measured so far: requests started before the cut are left out (counted
        in ``excluded`` only). In a distributed run the cut is ``_RESET_LEAD_S`` ahead, so that every
        worker knows it before it comes: a report a worker sent before it knew holds only earlier
        requests, and the master counts those as left out (reports carry the reset epoch)."""
        cut = wall_s + (_RESET_LEAD_S if self.is_master else 0.0)
        self._epoch += 1
        self.stats = self.stats.left_out()
        self._count_from = max(self._count_from, cut)
        if self.is_master:
            self.environment.runner.send_message(_MSG_RESET, {"epoch": self._epoch, "t": cut})

    def _on_reset_message(self, environment: Any, msg: Any, **_kw: Any) -> None:
        self._epoch = int(msg.data["epoch"])
        self.stats = self.stats.left_out()
        self._count_from = max(self._count_from, float(msg.data["t"]))

    # --- what the users call -------------------------------------------------------------------

    def settings(self) -> LoadSettings:
        """The run's settings (read at test start)."""
        if self._settings is None:
            raise LocustError("gatecheck settings are not available (see the error logged at test start)")
        return self._settings

    def next_user_index(self) -> int:
        """A distinct number per user of this process (seeds)."""
        return next(self._user_index)

    def total_users(self) -> int:
        """Users in the whole run (all workers), as the master started it."""
        value = getattr(self.environment.parsed_options, _TOTAL_USERS, None)
        return int(value or self.environment.runner.target_user_count or 1)

    def group_now(self) -> str:
        """The metrics group of a request starting now: the scenario, or the running ramp step."""
        settings = self.settings()
        if settings.scenario != "ramp":
            return settings.scenario
        levels = settings.ramp.levels()
        step = settings.ramp.step_at((time.perf_counter_ns() - self._start_ns) / 1e9)
        return ramp_group(levels[-1] if step is None else levels[step])

    def http_options(self) -> dict[str, Any]:
        """The HTTP client's keywords for the target (headers, TLS, proxy), made once per run."""
        if self._http_options is None:
            self._http_options = http_options(self.settings())
        return self._http_options

    def take(self) -> bool:
        """Reserve one request of the budget; False (nothing may be sent) once it is spent."""
        if self.guard.take():
            return True
        self._budget_check()
        return False

    def assembler(self, dialect: Dialect) -> ChatStreamAssembler | MessageStreamAssembler | None:
        """An assembler when the next stream is one of the ``--conformance-sample`` share checked
        against the protocol rules (evenly spread: stream n is checked when n x share crosses an
        integer), else None."""
        settings = self.settings()
        share = settings.conformance_sample
        n = next(self._streams)
        if math.floor((n + 1) * share) == math.floor(n * share):
            return None
        if dialect == "anthropic":
            return MessageStreamAssembler()
        return ChatStreamAssembler(reasoning_field=settings.reasoning_field)

    def record(
        self, group: str, timing: StreamTiming, kind: str, name: str, nonce: str | None = None
    ) -> RequestMetrics:
        """Derive one request's metrics (target text redacted first), count them, fire ONE locust
        request event; requests started in the warm-up (or before a reset) are left out. A stream
        with a ``nonce`` waits for its harness record (gateway overhead)."""
        self._scrub(timing)
        m = derive(timing)
        reason = self.guard.done(m.status, m.error_code)
        if reason is not None:
            self._stop_early(reason)
        if m.wall_start_s < self._count_from:
            self.stats.excluded += 1
        else:
            slo = self.settings().slo
            targets = slo.goodput_targets if slo is not None else {}
            self.stats.add(group, m, good=bool(targets) and is_good(m, targets))
            self._fire(kind, name, m)
            if nonce is not None and m.ok and self._tracker is not None:
                self._tracker.expect(nonce, timing.token_ns, self.stats.overhead, time.monotonic())
        if self.guard.spent:
            self._budget_check()
        return m

    def _scrub(self, timing: StreamTiming) -> None:
        """Every string the target chose (error codes, violation messages and bytes) without keys,
        bounded, before it becomes a failure name, a table row or a report field."""
        if timing.error_code is not None:
            timing.error_code = public_code(timing.error_code, self._secrets)
        timing.violations = [
            Violation(
                v.rule,
                self.public(v.message),
                v.index,
                self.public(v.raw.decode("utf-8", "replace")).encode(),
            )
            for v in timing.violations
        ]

    def _fire(self, kind: str, name: str, m: RequestMetrics) -> None:
        """ONE locust request event per request: end-to-end time, bytes, and the failure if any."""
        failure = None if m.ok else RequestFailed(f"{m.status} {m.error_code}")
        self.environment.events.request.fire(
            request_type=kind, name=name, response_time=m.e2e_ms or 0.0, response_length=m.bytes_received,
            response=None, context={}, exception=failure, start_time=m.wall_start_s,
        )  # fmt: skip

    def record_due(self, lag_ns: int, started: bool) -> None:
        """The rate generator's account of one due request."""
        rate = self.stats.rate
        rate.due += 1
        if started:
            rate.started += 1
            rate.lag.record(lag_ns / 1e6)
        else:
            rate.skipped += 1

    def next_limits_key(self) -> LimitKey | None:
        """The next key to probe (one per LimitsUser), None when every key has its user."""
        return self._limits_queue.pop(0) if self._limits_queue else None

    def key_for(self, key: LimitKey) -> str:
        """The key a probe sends (from its environment variable, or the main key)."""
        secret = limits_secret(key, self.settings())
        self._keep_secret(secret)
        return secret.reveal()

    def record_probe(self, record: ProbeRecord) -> None:
        """Keep one probe request's record for the verdict."""
        self.stats.probes.append(record.to_json())

    def limits_key_done(self) -> None:
        """A key's probes are over; after the last one, end the run."""
        self._limits_pending -= 1
        if self._limits_pending <= 0:
            gevent.spawn_later(0.1, self._end_run)

    # --- stopping: early stop, budget ------------------------------------------------------------

    def _stop_early(self, reason: str) -> None:
        """The first requests all failed with 401/403/refused: stop the run, exit code 2."""
        if self.is_worker:
            self.environment.runner.send_message(_MSG_STOP, {"reason": reason})
            return
        self._stopping(reason)

    def _stopping(self, reason: str) -> None:
        if self._stop_reason is None:
            self._stop_reason = reason
            print(f"gatecheck: stopping early: {reason}", file=sys.stderr, flush=True)
            gevent.spawn(self._end_run)

    def _on_stop_message(self, environment: Any, msg: Any, **_kw: Any) -> None:
        self._stopping(str(msg.data["reason"]))

    def _budget_check(self) -> None:
        """Once the budget is spent and nothing is in flight: end the run (or tell the master)."""
        if self._budget_told or not self.guard.spent or self.guard.in_flight > 0:
            return
        self._budget_told = True
        if self.is_worker:
            self.environment.runner.send_message(_MSG_BUDGET, {"sent": self.guard.sent})
            return
        self._budget_spent()

    def _on_budget_message(self, environment: Any, msg: Any, **_kw: Any) -> None:
        self._budget_workers.add(str(msg.node_id))
        if len(self._budget_workers) >= int(getattr(environment.parsed_options, _WORKERS, 1) or 1):
            self._budget_spent()

    def _budget_spent(self) -> None:
        if self._budget_note is None:
            budget = self.settings().budget
            self._budget_note = f"the request budget of {budget} (--budget-requests) was spent: run stopped"
            print(f"gatecheck: {self._budget_note}", flush=True)
            gevent.spawn(self._end_run)

    def _end_run(self) -> None:
        runner = self.environment.runner
        if getattr(self.environment.parsed_options, "headless", False):
            runner.quit()
        else:
            runner.stop()

    # --- the end ------------------------------------------------------------------------------

    def _on_quitting(self, environment: Any, **_kw: Any) -> None:
        if self.is_worker or self._settings is None or self._start_wall is None:
            return
        settings = self._settings
        summary = self.summary(settings)
        gates = self._gate(summary, settings)
        outcome = outcome_section(summary, gates, early_stop=self._stop_reason, budget=self._budget_note)
        summary["outcome"] = outcome
        paths = {"summary": write_summary(summary, settings.report_dir / f"{self.run_name}.json")}
        if settings.plots:
            paths.update(self._report_page(summary, settings))
        for warning in summary["warnings"]:
            print(f"gatecheck warning: {warning}", flush=True)
        print(f"gatecheck: {outcome['headline']}", flush=True)
        for reason in outcome["reasons"]:
            print(f"gatecheck: {reason}", file=sys.stderr if outcome["exit_code"] else sys.stdout, flush=True)
        for name, path in paths.items():
            print(f"gatecheck {name}: {path}", flush=True)
        environment.process_exit_code = outcome["exit_code"]

    def _report_page(self, summary: JSONObject, settings: LoadSettings) -> dict[str, Path]:
        try:
            from gatecheck.load.html import write_load_html

            return {"html": write_load_html(summary, settings.report_dir / f"{self.run_name}.html")}
        except Exception as exc:  # a plotting failure must not hide the gate's verdict
            log.error("gatecheck: the report page could not be written: %s", exc)
            return {}

    def summary(self, settings: LoadSettings) -> JSONObject:
        """The run's summary from everything merged so far (without gates)."""
        options = self.environment.parsed_options
        start = self._start_wall or time.time()
        return run_summary(
            self.stats,
            settings,
            name=self.run_name,
            users=getattr(options, _TOTAL_USERS, None),
            spawn_rate=float(options.spawn_rate) if options.spawn_rate is not None else None,
            workers=len(self.workers),
            start_s=max(start, self._count_from),
            end_s=self._stop_wall or time.time(),
        )

    def _gate(self, summary: JSONObject, settings: LoadSettings) -> bool | None:
        """Run the SLO gate, the baseline comparison and the limits verdict; True if one failed.

        None when the run has no gate at all.
        """
        outcomes: list[bool] = []
        if settings.slo is not None:
            result = evaluate(summary, settings.slo)
            summary["slo"] = result.to_json()
            for line in result.lines():
                print(line, flush=True)
            outcomes.append(not result.passed)
        if settings.baseline_path is not None:
            baseline = read_summary(Path(settings.baseline_path))
            regressions = compare(summary, baseline, settings.regression_threshold)
            summary["baseline"] = {
                "path": settings.baseline_path,
                "threshold": settings.regression_threshold,
                "regressions": [r.to_json() for r in regressions],
            }
            for regression in regressions:
                print(regression.line(), flush=True)
            outcomes.append(bool(regressions))
        if summary.get("limits") is not None:
            for probe in summary["limits"]["probes"]:
                status = "ok" if probe["passed"] else "not checked" if probe.get("not_checked") else "FAIL"
                detail = (
                    probe.get("not_checked") or "; ".join(probe["failures"]) or f"ratio {probe['ratio']:g}"
                )
                print(f"LIMITS {probe['probe']}: {status}, {detail}", flush=True)
            outcomes.append(not summary["limits"]["passed"])
        return any(outcomes) if outcomes else None
