"""``gatecheck load``: run the locust load test against a target file's deployment, print a summary.

A thin front: it resolves the target (``--target gatecheck.toml`` plus options, as everywhere),
checks the run's shape (``-u``, ``-r``, ``--processes``, ``-t``: one line, exit 2), starts the
embedded reference gateway when the target has no base URL, then runs
``python -m locust -f <loadtests/locustfile.py> --headless ...`` in a SUBPROCESS (importing locust
monkey-patches the whole process with gevent) with the key in the child's environment, never on
its command line. Options after ``--`` go to locust as they are. Locust's CSV and HTML go next to
gatecheck's summary in ``--report-dir``; the plugin runs the shared preflight first.

Locust runs in a process group of its own: SIGTERM, SIGHUP or SIGINT to ``gatecheck load`` (a CI
timeout, a closed terminal, Ctrl-C) stops the whole group, workers included, and the command exits
128 + the signal; should ``gatecheck load`` itself be killed outright, the locust master notices its
parent is gone and quits (``PARENT_PID_ENV``). Exit code otherwise: locust's, which the plugin sets
(0 passed; 1 no request succeeded or a gate failed; 2 bad options, preflight refused, stopped early
or nothing measured).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from gatecheck._resources import data_dir
from gatecheck.config import (
    DEFAULT_KEY_2_ENV,
    DEFAULT_KEY_ENV,
    Target,
    add_target_arguments,
    targets_from_args,
)
from gatecheck.errors import ConfigError
from gatecheck.load.options import LOAD_OPTIONS, PARENT_PID_ENV, check_run_shape, forwarded_arguments
from gatecheck.load.summary import read_summary
from gatecheck.redaction import Secret

_TARGET_FLAGS = (
    ("rpm", "--rpm"),
    ("tpm", "--tpm"),
    ("auth", "--auth"),
    ("max_requests", "--budget-requests"),
    ("max_output_tokens", "--max-output-tokens"),
    ("max_response_bytes", "--max-response-bytes"),
    ("connect_timeout", "--connect-timeout"),
    ("read_timeout", "--read-timeout"),
    ("total_timeout", "--total-timeout"),
    ("stall_seconds", "--stall-seconds"),
    ("rpm_2", "--rpm-2"),
    ("tpm_2", "--tpm-2"),
    ("ca_bundle", "--ca-bundle"),
    ("upstream", "--upstream"),
    ("upstream_model", "--upstream-model"),
)
"""The resolved target's settings the locust child gets as flags when set (its profile goes in the
environment: ``--profile`` is locust's own option); also ``--insecure`` and every ``--header``, a
value from the environment as its ``$VAR`` (the child has the same environment: no secret on its
command line). The keys go in the child's environment."""
_PROFILE_ENV = "GATECHECK_PROFILE"
_EXIT_GRACE_S = 120.0
"""How long past its planned duration a locust run may take before it is stopped."""
_LIMITS_RUN_CAP_S = 3600.0
_STOP_GRACE_S = 15.0
"""How long locust may take to write its reports after SIGTERM before the group is killed."""
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
_UNLIMITED = (1_000_000_000, 1_000_000_000_000)
_EMBEDDED_REPLY_WORDS = 4096
"""The embedded gateway answers up to max_tokens words (its natural reply length is raised to this)."""
_LOCAL = {"report_dir", "run_name"}


def configure(parser: argparse.ArgumentParser) -> None:
    """Target options (config.py's table), locust's run shape, and every load-test option."""
    add_target_arguments(parser)
    run = parser.add_argument_group("run")
    run.add_argument("-u", "--users", type=_number, default=8, help="concurrent users (default 8)")
    run.add_argument(
        "-r", "--spawn-rate", type=_number, default=None, help="users started per second (default: all)"
    )
    run.add_argument(
        "-t",
        "--run-time",
        default="30s",
        help="run time, e.g. 60s, 5m (default 30s; limits: until the probes end)",
    )
    run.add_argument(
        "--processes",
        type=_number,
        default=None,
        help="locust worker processes on this machine (-1: one per core)",
    )
    run.add_argument(
        "--locustfile", default=None, help="locustfile (default: gatecheck's loadtests/locustfile.py)"
    )
    load = parser.add_argument_group("load test (see docs/load-testing.md)")
    for option in LOAD_OPTIONS:
        if option.dest in _LOCAL:
            continue
        load.add_argument(
            option.flag,
            dest=option.dest,
            default=None,
            choices=option.choices,
            action="append" if option.multiple else "store",
            metavar=None if option.choices else option.metavar,
            help=option.help,
        )
    load.add_argument("--report-dir", default="reports", help="where the reports go (default reports/)")
    load.add_argument(
        "--run-name", default=None, help="file name stem of the reports (default load-<scenario>-<time>)"
    )
    parser.add_argument(
        "locust_args",
        nargs="*",
        metavar="-- LOCUST_OPTION",
        help="options after -- go to locust as they are (e.g. -- --stop-timeout 10 --loglevel DEBUG)",
    )


def _number(text: str) -> int | float | str:
    """An int or float as written; anything else stays a string for check_run_shape to refuse in
    one line (argparse's own type errors print the whole usage)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def run_seconds(text: str) -> float:
    """Seconds in a locust run time such as ``90``, ``45s``, ``5m`` or ``1h30m``."""
    total, number = 0.0, ""
    units = {"h": 3600, "m": 60, "s": 1}
    try:
        for char in text.strip():
            if char.isdigit() or char == ".":
                number += char
            elif char in units and number:
                total += float(number) * units[char]
                number = ""
            else:
                raise ValueError(char)
        if number:
            total += float(number)
    except ValueError:
        raise ConfigError("--run-time", text, "a duration like 90, 45s, 5m or 1h30m") from None
    if total <= 0:
        raise ConfigError("--run-time", text, "a duration above 0, like 45s")
    return total


def locust_command(
    host: str,
    *,
    locustfile: Path,
    users: int,
    spawn_rate: float,
    run_time: str | None,
    report_dir: Path,
    run_name: str,
    processes: int | None,
    extra: Sequence[str],
) -> list[str]:
    """The locust command line (no key on it: the child reads ``GATECHECK_API_KEY``)."""
    stem = report_dir / run_name
    command = [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--only-summary"]
    command += ["--host", host, "-u", str(users), "-r", f"{spawn_rate:g}"]
    command += ["--csv", str(stem), "--html", f"{stem}.locust.html", "--json-file", f"{stem}.locust"]
    command += ["--report-dir", str(report_dir), "--run-name", run_name]
    if run_time is not None:
        command += ["-t", run_time]
    if processes:
        command += ["--processes", str(processes)]
    return command + list(extra)


class _Stopped(Exception):
    """A stop signal reached ``gatecheck load``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stopped(signum: int, _frame: FrameType | None) -> None:
    raise _Stopped(signum)


@contextmanager
def _stop_signals_raise() -> Iterator[None]:
    """While locust runs, SIGTERM, SIGHUP and SIGINT raise ``_Stopped`` here (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _raise_stopped) for sig in _STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def stop_group(process: subprocess.Popen[bytes], grace_s: float = _STOP_GRACE_S) -> None:
    """Stop locust's whole process group: SIGTERM (locust writes its reports), then SIGKILL for
    whatever is left after ``grace_s``; returns when no process of the group remains."""
    pgid = process.pid
    if _group_alive(pgid):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if process.poll() is not None and not _group_alive(pgid):
            return
        time.sleep(0.05)
    if _group_alive(pgid):
        os.killpg(pgid, signal.SIGKILL)
    process.wait()
    while _group_alive(pgid):
        time.sleep(0.02)


def _run_locust(
    command: Sequence[str], keys: dict[str, str], timeout_s: float, env_extra: dict[str, str] | None = None
) -> int:
    """Run locust in a process group of its own and wait; a stop signal or the timeout stops the
    whole group (workers included) and nothing of it stays behind. ``keys``: variable -> key."""
    env = {**os.environ, **(env_extra or {}), **keys, PARENT_PID_ENV: str(os.getpid())}
    process = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        with _stop_signals_raise():
            code = process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        stop_group(process)
        print(
            f"gatecheck load: locust did not finish within {timeout_s:.0f} s and was stopped", file=sys.stderr
        )
        return 1
    except _Stopped as stop:
        stop_group(process)
        print(f"gatecheck load: stopped by {stop}; locust and its workers stopped", file=sys.stderr)
        return 128 + stop.signum
    stop_group(process)  # workers a crashed master left behind, if any
    return code


def run_load(
    target_url: str,
    key: Secret | str,
    *,
    users: int,
    duration_s: float,
    report_dir: Path,
    extra_args: Sequence[str] = (),
) -> tuple[int, Path]:
    """Run one headless locust load test in a subprocess; returns (exit code, summary path).

    ``extra_args`` are more locust/gatecheck options (e.g. ``["--output-tokens", "32"]``).
    """
    run_name = f"load-{time.strftime('%Y%m%d-%H%M%S')}"
    command = locust_command(
        target_url,
        locustfile=data_dir("loadtests") / "locustfile.py",
        users=users,
        spawn_rate=float(users),
        run_time=f"{duration_s:g}s",
        report_dir=report_dir,
        run_name=run_name,
        processes=None,
        extra=extra_args,
    )
    code = _run_locust(
        command,
        {DEFAULT_KEY_ENV: key.reveal() if isinstance(key, Secret) else key},
        duration_s + _EXIT_GRACE_S,
    )
    return code, report_dir / f"{run_name}.json"


def _one_target(args: argparse.Namespace) -> Target:
    targets = targets_from_args(args)
    if len(targets) != 1:
        raise ConfigError("--target", ", ".join(args.targets), "one target file for a load run")
    return targets[0]


def _target_flags(target: Target) -> list[str]:
    flags = ["--model", target.models.chat]
    for field, flag in _TARGET_FLAGS:
        value = getattr(target, field)
        if value is not None:
            flags += [flag, str(value)]
    if target.insecure:
        flags.append("--insecure")
    for name, value in target.headers:
        flags += ["--header", f"{name}: {value.source if isinstance(value, Secret) else value}"]
    return flags


def _child_keys(target: Target, key: Secret | str) -> dict[str, str]:
    """The keys the locust child reads from its environment (never from its command line)."""
    keys = {DEFAULT_KEY_ENV: key.reveal() if isinstance(key, Secret) else key}
    if target.api_key_2 is not None and target.base_url is not None:
        keys[DEFAULT_KEY_2_ENV] = target.api_key_2.reveal()
    return keys


@contextmanager
def _gateway_for(target: Target, args: argparse.Namespace) -> Iterator[tuple[str, Secret | str]]:
    """The target's URL and key; without a base URL, an embedded reference gateway for the run (in
    proxy mode in front of the upstream harness when there is one: ``--upstream``)."""
    if target.base_url is not None:
        if target.api_key is None:
            raise ConfigError("api_key", "(not set)", f"a key in ${target.api_key_env} or --api-key")
        yield target.base_url, target.api_key
        return
    from gatecheck.reference import DEMO_KEY, GatewayConfig, start_in_thread

    rpm, tpm = (target.rpm, target.tpm) if args.scenario == "limits" else _UNLIMITED
    window = _window_s(args.window_seconds)
    config = GatewayConfig(
        rpm=rpm,
        tpm=tpm,
        window_seconds=window,
        reply_words=_EMBEDDED_REPLY_WORDS,
        upstream=target.upstream,
        upstream_api_key=None if target.upstream is None else _harness_key(target.upstream),
    )
    with start_in_thread(config) as gateway:
        behind = f", proxying to the harness at {target.upstream}" if target.upstream else ""
        print(
            f"gatecheck load: no base URL, load-testing the embedded reference gateway at {gateway.url}"
            + behind,
            flush=True,
        )
        yield gateway.url, DEMO_KEY


def _harness_key(harness: str) -> str:
    """The key the upstream harness requires from the gateway (read from its control API, never
    printed)."""
    from gatecheck.upstream.control import Control, ControlError

    with Control(harness) as control:
        try:
            key = str(control.info()["key"])
        except (ControlError, KeyError) as exc:
            raise ConfigError(
                "--upstream", harness, f"a running harness (gatecheck upstream): {exc}"
            ) from None
    return key


def _window_s(text: str | None) -> float:
    """``--window-seconds`` for the embedded gateway (locust checks it again, with the same bounds)."""
    try:
        window = float(text) if text else 60.0
    except ValueError:
        window = -1.0
    if not 0.01 <= window <= 3600:
        raise ConfigError("--window-seconds", text, "a number from 0.01 to 3600")
    return window


def _timeout(args: argparse.Namespace) -> tuple[str | None, float]:
    """locust's -t for this run and how long to let it take at most."""
    if args.scenario == "limits":
        return None, _LIMITS_RUN_CAP_S
    return args.run_time, run_seconds(args.run_time) + _EXIT_GRACE_S


def run(args: argparse.Namespace) -> int:
    """Run the load test and print the summary table; the exit code is locust's."""
    target = _one_target(args)
    run_time, timeout_s = _timeout(args)
    check_run_shape(args.users, args.spawn_rate, args.processes, run_seconds(run_time) if run_time else None)
    scenario = args.scenario or "steady"
    run_name = args.run_name or f"load-{scenario}-{time.strftime('%Y%m%d-%H%M%S')}"
    report_dir = Path(args.report_dir)
    locustfile = Path(args.locustfile) if args.locustfile else data_dir("loadtests") / "locustfile.py"
    extra = _target_flags(target) + forwarded_arguments(
        vars(args), [o for o in LOAD_OPTIONS if o.dest not in _LOCAL]
    )
    with _gateway_for(target, args) as (url, key):
        command = locust_command(
            url,
            locustfile=locustfile,
            users=args.users,
            spawn_rate=args.spawn_rate or float(args.users),
            run_time=run_time,
            report_dir=report_dir,
            run_name=run_name,
            processes=args.processes,
            extra=extra + list(args.locust_args),
        )
        code = _run_locust(command, _child_keys(target, key), timeout_s, {_PROFILE_ENV: target.profile})
    summary_path = report_dir / f"{run_name}.json"
    if summary_path.exists():
        from gatecheck.load.html import summary_table

        print(summary_table(read_summary(summary_path)))
        written = sorted(p.name for p in report_dir.glob(f"{run_name}[._]*"))
        print(f"reports in {report_dir}: {', '.join(written)}")
    return code
