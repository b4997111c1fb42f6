"""Serve the double by hand: ``cd tests && python -m independent [--rpm N] [--window S] [--quirk Q]``.

The keys come from $DOUBLE_API_KEY and $DOUBLE_API_KEY_2 (test keys, both with the given limits);
the first line printed is the base URL. Stop it with Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import threading

from . import QUIRKS, DoubleConfig, KeyLimits, start_double


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m independent", description=__doc__)
    parser.add_argument("--rpm", type=int, default=60)
    parser.add_argument("--tpm", type=int, default=100_000)
    parser.add_argument("--window", type=float, default=60.0, help="rate-limit window in seconds")
    parser.add_argument("--token-interval", type=float, default=0.002, help="seconds between streamed tokens")
    parser.add_argument("--quirk", action="append", default=[], choices=sorted(QUIRKS))
    args = parser.parse_args()
    names = [os.environ.get(v) for v in ("DOUBLE_API_KEY", "DOUBLE_API_KEY_2")]
    keys = {k: KeyLimits(args.rpm, args.tpm) for k in names if k}
    if not keys:
        parser.error("set $DOUBLE_API_KEY (and optionally $DOUBLE_API_KEY_2)")
    double = start_double(DoubleConfig(keys, args.window, args.token_interval, frozenset(args.quirk)))
    print(double.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        double.stop()


if __name__ == "__main__":
    main()
