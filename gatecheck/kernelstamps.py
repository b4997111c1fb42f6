"""Kernel receive stamps: when bytes reached this machine, not when a busy process read them.

Linux stamps each received packet when ``SO_TIMESTAMPNS`` is set, and ``recvmsg`` returns the
stamp beside the data. Both ends of a load run use it: the load users stamp response chunks
(``gatecheck.load.users``), the reference gateway stamps requests to start their deadlines
(``gatecheck.reference.arrival``). Stamps are ``CLOCK_REALTIME``; an offset taken when stamping is
enabled maps them onto the caller's monotonic clock (``perf_counter_ns`` and ``monotonic_ns`` are
both ``CLOCK_MONOTONIC`` on Linux).
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable
from typing import Any

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
"""Linux's SO_TIMESTAMPNS (35 on x86-64 and arm64; Python 3.11 does not name it): the kernel stamps
each received packet, and ``recvmsg`` returns the stamp as SCM_TIMESTAMPNS (the same number)."""
STAMP_SPACE = socket.CMSG_SPACE(16)
"""Ancillary buffer size for one ``struct timespec``."""
_TIMESPEC = struct.Struct("@qq")


def enable_kernel_stamps(sock: Any, clock_ns: Callable[[], int] = time.perf_counter_ns) -> int | None:
    """Ask the kernel to stamp packets arriving on ``sock``; the realtime-to-``clock_ns`` offset, or None.

    None where the option is not supported (then reads are stamped when they return).
    """
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return None
    return time.time_ns() - clock_ns()


def arrival_ns(ancillary: list[tuple[int, int, bytes]], offset_ns: int, returned_ns: int) -> int:
    """The arrival time of a ``recvmsg`` read's first packet on the clock the offset was taken for.

    ``returned_ns`` (when the read returned) is used when the kernel gave no stamp, and bounds the
    result: an offset error can never put an arrival after the read that delivered it.
    """
    for _level, kind, payload in ancillary:
        if kind == SO_TIMESTAMPNS and len(payload) >= _TIMESPEC.size:
            seconds, nanos = _TIMESPEC.unpack_from(payload)
            stamped: int = seconds * 1_000_000_000 + nanos - offset_ns
            return min(returned_ns, stamped)
    return returned_ns
