"""When a request reached the gateway: the kernel's receive stamp of the read that brought it.

Token deadlines start at the request's arrival, not at the moment the event loop gets round to
its handler. On one core at 256 shaped streams that wait was 0.7 ms at the median and 3-12 ms at
p99 (one or two loop iterations behind other streams' writes), and every bit of it was TTFT
error. The listening socket is a ``StampingListener``: the connections it accepts are
``StampedConnection`` objects whose reads (asyncio's transport calls ``recv``) use ``recvmsg``
with the kernel's ``SO_TIMESTAMPNS`` and note the arrival, by file descriptor, for
``arrived_at``. Where the kernel gives no stamp, the moment the read returned is used, which
still leaves out the wait between the read and the handler.
"""

from __future__ import annotations

import socket
import time

from aiohttp import web

from gatecheck.kernelstamps import STAMP_SPACE, arrival_ns, enable_kernel_stamps

_ARRIVALS: dict[int, int] = {}
"""File descriptor of an open stamped connection -> ``monotonic_ns`` arrival of its last read.
Keyed by descriptor because asyncio hands handlers a wrapper, not the socket object."""


class StampedConnection(socket.socket):
    """An accepted connection whose every ``recv`` notes when its first packet arrived."""

    __slots__ = ("_fd", "_offset_ns")

    def __init__(self, family: int, kind: int, proto: int, fileno: int) -> None:
        super().__init__(family, kind, proto, fileno=fileno)
        self._fd = fileno
        # Without kernel stamps no stamp comes back, and arrival_ns gives the read's own time.
        self._offset_ns = enable_kernel_stamps(self, time.monotonic_ns) or 0

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data, ancillary, _flags, _addr = self.recvmsg(bufsize, STAMP_SPACE, flags)
        _ARRIVALS[self._fd] = arrival_ns(ancillary, self._offset_ns, time.monotonic_ns())
        return data

    def close(self) -> None:
        _ARRIVALS.pop(self._fd, None)
        super().close()


class StampingListener(socket.socket):
    """A listening socket whose accepted connections are ``StampedConnection`` objects."""

    __slots__ = ()

    def accept(self) -> tuple[socket.socket, object]:
        fd, address = self._accept()  # type: ignore[attr-defined]
        conn = StampedConnection(self.family, self.type, self.proto, fileno=fd)
        if socket.getdefaulttimeout() is None and self.gettimeout():
            conn.setblocking(True)  # as socket.accept does
        return conn, address


def stamping(sock: socket.socket) -> socket.socket:
    """``sock`` (bound, listening) as a ``StampingListener``; unchanged without ``recvmsg`` (Windows)."""
    if not hasattr(socket.socket, "recvmsg"):
        return sock
    timeout = sock.gettimeout()
    listener = StampingListener(sock.family, sock.type, sock.proto, fileno=sock.detach())
    listener.settimeout(timeout)
    # Set on the listener too: a connection's first request often arrives before it is accepted,
    # and only then does the kernel stamp it (accepted sockets inherit the option).
    enable_kernel_stamps(listener)
    return listener


def arrived_at(request: web.Request) -> float:
    """When ``request`` arrived, on the ``time.monotonic`` clock (now, if it was not stamped)."""
    now = time.monotonic_ns()
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    stamped = _ARRIVALS.get(sock.fileno(), now) if sock is not None else now
    return min(stamped, now) / 1e9
