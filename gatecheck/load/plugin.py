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

- ``init`` (via ``register``): on the master or the single process, validate the options (a bad
  one ends the run with one line and exit code 2), pick the user class for the scenario, set the
  ramp shape, size the limits run;
- ``test_start``: read the settings on every process (workers get them from the master here),
  reset the measurements, ``gc.freeze()`` (GC pauses showed up as 20-35 ms TTFT outliers);
- ``request`` (fired by :meth:`GatecheckPlugin.record`): ONE event per metric per request at its
  end, named ``TTFT``, ``ITL`` (the request's mean gap), ``TPOT`` and ``E2E``; per-chunk samples
  stay in our own histograms;
- ``report_to_master`` / ``worker_report``: workers ship their raw HDR histograms and counts as
  deltas; the master adds them (percentiles are never averaged);
- ``quitting``: the master (or single process) writes the summary and the plots page, runs the
  SLO gate, the baseline comparison and the limits verdict, prints one line per finding and sets
  ``environment.process_exit_code`` (1 when any of them failed, 0 otherwise).
"""

from __future__ import annotations

import gc
import itertools
import logging
import sys
import time
import weakref
from pathlib import Path
from typing import Any

import gevent
from locust.exception import LocustError
from locust.runners import MasterRunner, WorkerRunner

from gatecheck._types import JSONObject
from gatecheck.errors import ConfigError
from gatecheck.load.limits import LimitKey, ProbeRecord
from gatecheck.load.options import LOAD_OPTIONS, LoadSettings, limits_secret, read_settings, target_options
from gatecheck.load.shape import RampShape
from gatecheck.load.slo import compare, evaluate, is_good
from gatecheck.load.stats import LoadStats
from gatecheck.load.summary import ramp_group, read_summary, run_summary, write_summary
from gatecheck.load.timing import RequestMetrics, StreamTiming, derive
from gatecheck.redaction import RedactingFilter

__all__ = ["GatecheckPlugin", "add_arguments", "plugin_for", "register"]

log = logging.getLogger("gatecheck.load")
_WIRE_KEY = "gatecheck"
_TOTAL_USERS = "gatecheck_total_users"
"""Set on the master's parsed options at test start; travels to workers with the spawn message."""
_PLUGINS: weakref.WeakKeyDictionary[Any, GatecheckPlugin] = weakref.WeakKeyDictionary()


class RequestFailed(Exception):
    """The outcome of a failed request as locust's failure table shows it (status and error code)."""


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
            dest=option.dest,
            default=None,
            metavar=option.metavar,
            help=option.help + (f" [env {option.env}]" if option.env else ""),
            is_secret=option.field == "api_key",
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


class GatecheckPlugin:
    """Per-process state of a load run: settings, measurements, and the hooks that move them."""

    def __init__(self, environment: Any) -> None:
        self.environment = environment
        self.stats = LoadStats()
        self._settings: LoadSettings | None = None
        self._user_index = itertools.count()
        self._limits_queue: list[LimitKey] = []
        self._limits_pending = 0
        self._start_wall: float | None = None
        self._start_ns = 0
        self._stop_wall: float | None = None
        self._sampler: Any = None
        self._redactor = RedactingFilter()
        self.run_name = ""
        self.workers: set[str] = set()

    # --- wiring --------------------------------------------------------------------------------

    @property
    def is_worker(self) -> bool:
        """This process runs users for a master."""
        return isinstance(self.environment.runner, WorkerRunner)

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
        if not self.is_worker:
            self._prepare()

    def _read(self) -> LoadSettings:
        options = vars(self.environment.parsed_options)
        return read_settings({**options, "host": self.environment.host or options.get("host")})

    def _prepare(self) -> None:
        """Validate, then shape the run for its scenario (user class, ramp shape, limits users)."""
        try:
            settings = self._read()
            if settings.scenario == "limits" and isinstance(self.environment.runner, MasterRunner):
                raise ConfigError("--scenario", "limits", "a single process (no --master/--processes)")
            if settings.baseline_path is not None:
                read_summary(Path(settings.baseline_path))
        except ConfigError as exc:
            print(f"gatecheck: {exc}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None
        self._redactor.add(settings.secret)
        options = self.environment.parsed_options
        self.run_name = settings.run_name or f"load-{settings.scenario}-{time.strftime('%Y%m%d-%H%M%S')}"
        if getattr(options, "html_file", None) is None:
            options.html_file = str(settings.report_dir / f"{self.run_name}.locust.html")
        if not getattr(options, "user_classes", None):
            self._pick_user_class(_user_class_for(settings))
        if settings.scenario == "ramp":
            self._set_ramp_shape(settings)
        if settings.scenario == "limits":
            options.num_users = options.spawn_rate = len(settings.limits_keys)
        # locust arms its --run-time timer against the event loop's cached clock, which is stale by
        # the whole start-up (about a second): refresh it so a short -t is not cut short.
        gevent.get_hub().loop.update_now()

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

    def _on_test_start(self, environment: Any, **_kw: Any) -> None:
        try:
            self._settings = self._read()
        except ConfigError as exc:
            log.error("gatecheck: %s", exc)
            self._settings = None
            return
        settings = self._settings
        self._redactor.add(settings.secret)
        self.stats = LoadStats()
        self.workers = set()
        self._start_wall, self._start_ns, self._stop_wall = time.time(), time.perf_counter_ns(), None
        self._limits_queue = list(settings.limits_keys)
        self._limits_pending = len(self._limits_queue)
        if not self.is_worker:
            runner = environment.runner
            setattr(environment.parsed_options, _TOTAL_USERS, int(runner.target_user_count or 1))
            self._sampler = gevent.spawn(self._sample_users)
        gc.collect()
        gc.freeze()

    def _on_test_stop(self, environment: Any, **_kw: Any) -> None:
        self._stop_wall = time.time()
        if self._sampler is not None:
            self._sampler.kill(block=False)
            self._sampler = None

    def _sample_users(self) -> None:
        while True:
            self.stats.series.sample_users(time.time(), int(self.environment.runner.user_count))
            gevent.sleep(1.0)

    def _on_report_to_master(self, client_id: str, data: dict[str, Any], **_kw: Any) -> None:
        data[_WIRE_KEY] = self.stats.to_wire()
        self.stats = LoadStats()

    def _on_worker_report(self, client_id: str, data: dict[str, Any], **_kw: Any) -> None:
        if _WIRE_KEY in data:
            self.workers.add(client_id)
            self.stats.merge(LoadStats.from_wire(data[_WIRE_KEY]))

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

    def record(self, group: str, timing: StreamTiming, kind: str) -> RequestMetrics:
        """Derive one request's metrics, count them, and fire locust's request events."""
        m = derive(timing)
        slo = self.settings().slo
        targets = slo.goodput_targets if slo is not None else {}
        self.stats.add(group, m, good=bool(targets) and is_good(m, targets))
        self._fire(kind, m)
        return m

    def _fire(self, kind: str, m: RequestMetrics) -> None:
        """ONE locust request event per metric of a finished request (failures: E2E only)."""

        def event(name: str, ms: float, length: int = 0, failure: Exception | None = None) -> None:
            self.environment.events.request.fire(
                request_type=kind, name=name, response_time=ms, response_length=length, response=None,
                context={}, exception=failure, start_time=m.wall_start_s,
            )  # fmt: skip

        failure = None if m.ok else RequestFailed(f"{m.status} {m.error_code}")
        event("E2E", m.e2e_ms or 0.0, m.bytes_received, failure)
        if failure is not None:
            return
        if m.ttft_ms is not None:
            event("TTFT", m.ttft_ms)
        if m.tpot_ms is not None:
            event("TPOT", m.tpot_ms)
        if m.itl_us:
            event("ITL", sum(m.itl_us) / len(m.itl_us) / 1000)

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
        self._redactor.add(secret)
        return secret.reveal()

    def record_probe(self, record: ProbeRecord) -> None:
        """Keep one probe request's record for the verdict."""
        self.stats.probes.append(record.to_json())

    def limits_key_done(self) -> None:
        """A key's probes are over; after the last one, end the run."""
        self._limits_pending -= 1
        if self._limits_pending <= 0:
            gevent.spawn_later(0.1, self._end_run)

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
        failed = self._gate(summary, settings)
        paths = {"summary": write_summary(summary, settings.report_dir / f"{self.run_name}.json")}
        if settings.plots:
            paths.update(self._plots_page(summary, settings))
        for warning in summary["warnings"]:
            print(f"gatecheck warning: {warning}", flush=True)
        for name, path in paths.items():
            print(f"gatecheck {name}: {path}", flush=True)
        if failed is not None:
            environment.process_exit_code = 1 if failed else 0

    def _plots_page(self, summary: JSONObject, settings: LoadSettings) -> dict[str, Path]:
        try:
            from gatecheck.load.html import write_load_html

            return {"html": write_load_html(summary, settings.report_dir / f"{self.run_name}.html")}
        except Exception as exc:  # a plotting failure must not hide the gate's verdict
            log.error("gatecheck: the plots page could not be written: %s", exc)
            return {}

    def summary(self, settings: LoadSettings) -> JSONObject:
        """The run's summary from everything merged so far (without gates)."""
        options = self.environment.parsed_options
        return run_summary(
            self.stats,
            settings,
            name=self.run_name,
            users=getattr(options, _TOTAL_USERS, None),
            spawn_rate=float(options.spawn_rate) if options.spawn_rate is not None else None,
            workers=len(self.workers),
            start_s=self._start_wall or time.time(),
            end_s=self._stop_wall or time.time(),
        )

    def _gate(self, summary: JSONObject, settings: LoadSettings) -> bool | None:
        """Run the SLO gate, the baseline comparison and the limits verdict; True if one failed.

        None when the run has no gate at all (locust's own exit code then stands).
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
