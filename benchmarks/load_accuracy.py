"""How close gatecheck's measured TTFT and ITL are to what the gateway injects.

The reference gateway is shaped with ``--ttft-ms 100 --itl-ms 20`` (absolute deadlines from the
moment it receives a request) and pinned to core 0; one locust process with gatecheck's streaming
user is pinned to core 1 (``taskset``). For 1, 64 and 256 concurrent streams, prints the error of
the measured TTFT and ITL (p50 and p99 minus the injected value). Targets: TTFT p99 error < 2 ms
at 64 streams, < 5 ms at 256. Bounded: one run of ``--seconds`` per level, 127.0.0.1 only.

    python benchmarks/load_accuracy.py [--seconds 10] [--streams 1 64 256]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = ROOT / "loadtests" / "locustfile.py"
TTFT_MS = 100.0
ITL_MS = 20.0
DEMO_KEY = "gatecheck-demo-key"
OUTPUT_TOKENS = 32


def _pinned(core: int, command: list[str]) -> list[str]:
    return ["taskset", "-c", str(core), *command] if shutil.which("taskset") else command


def start_gateway() -> tuple[subprocess.Popen[str], str]:
    """The shaped reference gateway on core 0, without limits; returns the process and its URL."""
    command = _pinned(
        0,
        [
            sys.executable,
            "-m",
            "gatecheck.cli",
            "serve",
            "--port",
            "0",
            "--ttft-ms",
            f"{TTFT_MS:g}",
            "--itl-ms",
            f"{ITL_MS:g}",
            "--reply-words",
            "4096",
            "--rpm",
            "1000000000",
            "--tpm",
            "1000000000000",
        ],
    )
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    if not url.startswith("http://"):
        process.kill()
        raise RuntimeError(f"the gateway did not print its URL (got {url!r})")
    return process, url


def measure(url: str, streams: int, seconds: float, workdir: Path) -> dict[str, float]:
    """One locust run at ``streams`` users; the summary's TTFT and ITL statistics."""
    name = f"accuracy-{streams}"
    spawn_rate = max(1, streams // 2)
    command = _pinned(
        1,
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILE),
            "--headless",
            "--only-summary",
            "--host",
            url,
            "-u",
            str(streams),
            "-r",
            str(spawn_rate),
            "-t",
            f"{seconds:g}s",
            "--prompt-tokens",
            "16",
            "--output-tokens",
            str(OUTPUT_TOKENS),
            "--ignore-eos",
            "on",
            "--report-dir",
            str(workdir),
            "--run-name",
            name,
        ],
    )
    env = {**os.environ, "GATECHECK_API_KEY": DEMO_KEY}
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 120)
    summary_path = workdir / f"{name}.json"
    if not summary_path.exists():
        raise RuntimeError(f"locust wrote no summary ({proc.returncode}):\n{proc.stderr[-3000:]}")
    summary = json.loads(summary_path.read_text())
    ttft, itl, ttfb = (summary["metrics"][k] for k in ("ttft_ms", "itl_ms", "ttfb_ms"))
    return {
        "requests": summary["requests"]["ok"],
        "failed": summary["requests"]["failed"],
        "ttft_p50": ttft["p50"] - TTFT_MS,
        "ttft_p99": ttft["p99"] - TTFT_MS,
        "itl_p50": itl["p50"] - ITL_MS,
        "itl_p99": itl["p99"] - ITL_MS,
        "ttfb_p50": ttfb["p50"],
        "ttfb_p99": ttfb["p99"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10, help="length of each run (default 10)")
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 64, 256], help="concurrency levels")
    args = parser.parse_args()
    gateway, url = start_gateway()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for streams in args.streams:
                rows.append((streams, measure(url, streams, args.seconds, Path(tmp))))
    finally:
        gateway.terminate()
        gateway.wait(timeout=10)
    print(
        f"measured minus injected (TTFT {TTFT_MS:g} ms, ITL {ITL_MS:g} ms), ms; {args.seconds:g} s per level"
    )
    print("TTFB: response headers, which the gateway sends as it starts a request (its admission delay)")
    heads = ("TTFT p50", "TTFT p99", "ITL p50", "ITL p99", "TTFB p50", "TTFB p99")
    print(f"{'streams':>8}{'requests':>10}{'failed':>8}" + "".join(f"{h:>10}" for h in heads))
    keys = ("ttft_p50", "ttft_p99", "itl_p50", "itl_p99", "ttfb_p50", "ttfb_p99")
    for streams, r in rows:
        print(
            f"{streams:>8}{r['requests']:>10.0f}{r['failed']:>8.0f}" + "".join(f"{r[k]:>10.2f}" for k in keys)
        )
    print("targets: TTFT p99 error < 2 ms at 64 streams, < 5 ms at 256")


if __name__ == "__main__":
    main()
