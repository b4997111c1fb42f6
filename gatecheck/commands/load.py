"""``gatecheck load``: run the locust load test against a target file's deployment, print a summary.

A thin front: it resolves the target (``--target gatecheck.toml`` plus options, as everywhere),
starts the embedded reference gateway when the target has no base URL, then runs
``python -m locust -f <loadtests/locustfile.py> --headless ...`` in a SUBPROCESS (importing locust
monkey-patches the whole process with gevent) with the key in the child's environment, never on
its command line. Locust's CSV and HTML go next to gatecheck's summary in ``--report-dir``.
Exit code: locust's (0 ok; 1 a gate failed or, without gates, a request failed; 2 bad options).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from gatecheck._resources import data_dir
from gatecheck.config import DEFAULT_KEY_ENV, Target, add_target_arguments, targets_from_args
from gatecheck.errors import ConfigError
from gatecheck.load.options import LOAD_OPTIONS, forwarded_arguments
from gatecheck.load.summary import read_summary
from gatecheck.redaction import Secret

_TARGET_FLAGS = (
    ("rpm", "--rpm"),
    ("tpm", "--tpm"),
    ("auth", "--auth"),
    ("connect_timeout", "--connect-timeout"),
    ("read_timeout", "--read-timeout"),
    ("total_timeout", "--total-timeout"),
)
_EXIT_GRACE_S = 120.0
"""How long past its planned duration a locust run may take before it is stopped."""
_LIMITS_RUN_CAP_S = 3600.0
_UNLIMITED = (1_000_000_000, 1_000_000_000_000)
_EMBEDDED_REPLY_WORDS = 4096
"""The embedded gateway answers up to max_tokens words (its natural reply length is raised to this)."""
_LOCAL = {"report_dir", "run_name"}


def configure(parser: argparse.ArgumentParser) -> None:
    """Target options (config.py's table), locust's run shape, and every load-test option."""
    add_target_arguments(parser)
    run = parser.add_argument_group("run")
    run.add_argument("-u", "--users", type=int, default=8, help="concurrent users (default 8)")
    run.add_argument(
        "-r", "--spawn-rate", type=float, default=None, help="users started per second (default: all)"
    )
    run.add_argument(
        "-t",
        "--run-time",
        default="30s",
        help="run time, e.g. 60s, 5m (default 30s; limits: until the probes end)",
    )
    run.add_argument("--processes", type=int, default=None, help="locust worker processes on this machine")
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


def run_seconds(text: str) -> float:
    """Seconds in a locust run time such as ``90``, ``45s``, ``5m`` or ``1h30m``."""
    total, number = 0.0, ""
    units = {"h": 3600, "m": 60, "s": 1}
    for char in text.strip():
        if char.isdigit() or char == ".":
            number += char
        elif char in units and number:
            total += float(number) * units[char]
            number = ""
        else:
            raise ConfigError("--run-time", text, "a duration like 90, 45s, 5m or 1h30m")
    if number:
        total += float(number)
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


def _run_locust(command: Sequence[str], key: Secret | str, timeout_s: float) -> int:
    env = {**os.environ, DEFAULT_KEY_ENV: key.reveal() if isinstance(key, Secret) else key}
    with subprocess.Popen(command, env=env) as process:
        try:
            return process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
            print(
                f"gatecheck load: locust did not finish within {timeout_s:.0f} s and was stopped",
                file=sys.stderr,
            )
            return 1
        except KeyboardInterrupt:
            process.terminate()
            process.wait(timeout=10)
            raise


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
    code = _run_locust(command, key, duration_s + _EXIT_GRACE_S)
    return code, report_dir / f"{run_name}.json"


def _one_target(args: argparse.Namespace) -> Target:
    targets = targets_from_args(args)
    if len(targets) != 1:
        raise ConfigError("--target", ", ".join(args.targets), "one target file for a load run")
    return targets[0]


def _target_flags(target: Target) -> list[str]:
    flags = ["--model", target.models.chat]
    for field, flag in _TARGET_FLAGS:
        flags += [flag, str(getattr(target, field))]
    return flags


@contextmanager
def _gateway_for(target: Target, args: argparse.Namespace) -> Iterator[tuple[str, Secret | str]]:
    """The target's URL and key; without a base URL, an embedded reference gateway for the run."""
    if target.base_url is not None:
        if target.api_key is None:
            raise ConfigError("api_key", "(not set)", f"a key in ${target.api_key_env} or --api-key")
        yield target.base_url, target.api_key
        return
    from gatecheck.reference import DEMO_KEY, GatewayConfig, start_in_thread

    rpm, tpm = (target.rpm, target.tpm) if args.scenario == "limits" else _UNLIMITED
    window = float(args.window_seconds) if args.window_seconds else 60.0
    config = GatewayConfig(rpm=rpm, tpm=tpm, window_seconds=window, reply_words=_EMBEDDED_REPLY_WORDS)
    with start_in_thread(config) as gateway:
        print(
            f"gatecheck load: no base URL, load-testing the embedded reference gateway at {gateway.url}",
            flush=True,
        )
        yield gateway.url, DEMO_KEY


def _timeout(args: argparse.Namespace) -> tuple[str | None, float]:
    """locust's -t for this run and how long to let it take at most."""
    if args.scenario == "limits":
        return None, _LIMITS_RUN_CAP_S
    return args.run_time, run_seconds(args.run_time) + _EXIT_GRACE_S


def run(args: argparse.Namespace) -> int:
    """Run the load test and print the summary table; the exit code is locust's."""
    target = _one_target(args)
    run_time, timeout_s = _timeout(args)
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
            extra=extra,
        )
        code = _run_locust(command, key, timeout_s)
    summary_path = report_dir / f"{run_name}.json"
    if summary_path.exists():
        from gatecheck.load.html import summary_table

        print(summary_table(read_summary(summary_path)))
        written = sorted(p.name for p in report_dir.glob(f"{run_name}[._]*"))
        print(f"reports in {report_dir}: {', '.join(written)}")
    return code
