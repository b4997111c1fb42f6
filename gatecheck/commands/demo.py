"""``gatecheck demo``: the README's main job, on a fresh machine with no key and no network.

It checks the embedded reference gateway with the conformance suite (started in-process on a free
loopback port; the ``upstream`` area runs against the upstream harness with a proxying instance
of the reference gateway in front of it, both in-process too), then load-tests a latency-shaped
instance of it for a few seconds with locust, writes every report under ``--report-dir`` and
prints where they are. Exit code: the conformance run's (0 conformant, 1 failures, 2 nothing
checked), else the load run's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gatecheck.commands import conform
from gatecheck.errors import ConfigError

_LOAD_TTFT_MS = 50.0
_LOAD_ITL_MS = 10.0
_LOAD_OUTPUT_TOKENS = 32


def configure(parser: argparse.ArgumentParser) -> None:
    """Where the reports go and how long the load run lasts."""
    parser.add_argument(
        "--report-dir",
        type=Path,
        default=Path("reports"),
        metavar="DIR",
        help="where to write (default reports/)",
    )
    parser.add_argument(
        "--users", type=int, default=16, metavar="N", help="load-run concurrency (default 16)"
    )
    parser.add_argument(
        "--load-seconds",
        type=float,
        default=8.0,
        metavar="S",
        help="load-run length in seconds (default 8; 0 skips)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no per-check progress lines")


def run(args: argparse.Namespace) -> int:
    """Conformance first, then the load run; print the report paths."""
    if args.users < 1:
        raise ConfigError("--users", args.users, "an integer >= 1")
    if not 0 <= args.load_seconds <= 600:
        raise ConfigError("--load-seconds", args.load_seconds, "0 (skip) to 600 seconds")
    report_dir: Path = args.report_dir
    print(
        "gatecheck demo: 1/2 conformance suite against the embedded reference gateway (upstream area:"
        f" the upstream harness behind a proxying reference gateway) -> {report_dir / 'conformance'}"
    )
    code = conform.run(_conform_args(report_dir / "conformance", quiet=args.quiet))
    if args.load_seconds == 0:
        return code
    print(
        f"\ngatecheck demo: 2/2 load run ({args.users} streams, {args.load_seconds:g} s, "
        f"TTFT {_LOAD_TTFT_MS:g} ms, ITL {_LOAD_ITL_MS:g} ms injected) -> {report_dir / 'load'}"
    )
    load_code, summary = _load_run(report_dir / "load", args.users, args.load_seconds)
    if summary.is_file():
        print(_load_digest(summary))
        print(f"load summary: {summary}")
        page = summary.with_suffix(".html")
        if page.is_file():
            print(f"load report: {page}")
    return code or load_code


def _conform_args(report_dir: Path, *, quiet: bool) -> argparse.Namespace:
    """The namespace ``gatecheck conform --report-dir DIR`` would parse to (no base URL: embedded)."""
    parser = argparse.ArgumentParser(prog="gatecheck conform")
    conform.configure(parser)
    return parser.parse_args(["--report-dir", str(report_dir), *(["-q"] if quiet else [])])


def _load_run(report_dir: Path, users: int, seconds: float) -> tuple[int, Path]:
    """A shaped reference gateway for the load run, so its figures can be read against known truth."""
    from gatecheck.commands.load import run_load
    from gatecheck.reference import DEMO_KEY, GatewayConfig, start_in_thread

    unlimited = 1_000_000_000
    config = GatewayConfig(rpm=unlimited, tpm=unlimited, ttft_ms=_LOAD_TTFT_MS, itl_ms=_LOAD_ITL_MS)
    with start_in_thread(config) as gateway:
        return run_load(
            gateway.url,
            DEMO_KEY,
            users=users,
            duration_s=seconds,
            report_dir=report_dir,
            extra_args=["--output-tokens", str(_LOAD_OUTPUT_TOKENS), "--ignore-eos", "on"],
        )


def _load_digest(summary_path: Path) -> str:
    """Three lines people read first: requests, TTFT and ITL percentiles, throughput."""
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    metrics = summary.get("metrics", {})
    outcome = summary.get("outcome")
    lines = [f"  {outcome['verdict'].upper()}: {outcome['headline']}"] if outcome else []
    for key, label in (("ttft_ms", "TTFT"), ("itl_ms", "ITL"), ("e2e_ms", "E2E")):
        m = metrics.get(key)
        if m and m.get("count"):
            lines.append(
                f"  {label:5} p50 {m['p50']:8.2f} ms   p99 {m['p99']:8.2f} ms   ({m['count']} samples)"
            )
    tps = metrics.get("output_tokens_per_s", {})
    if tps.get("count"):
        lines.append(f"  output tokens/s per request: p50 {tps['p50']:.1f}")
    return "\n".join(lines)
