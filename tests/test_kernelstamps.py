"""Kernel receive stamps (``gatecheck.kernelstamps``), shared by the load users and the gateway."""

from __future__ import annotations

import socket
import time

from gatecheck.kernelstamps import STAMP_SPACE, arrival_ns, enable_kernel_stamps


def test_kernel_stamps_give_the_arrival_time_not_the_read_time() -> None:
    """A packet read 50 ms after it arrived is stamped at its arrival (Linux SO_TIMESTAMPNS)."""
    with (
        socket.create_server(("127.0.0.1", 0)) as server,
        socket.create_connection(server.getsockname()) as client,
    ):
        peer, _ = server.accept()
        with peer:
            offset = enable_kernel_stamps(client)
            assert offset is not None, "SO_TIMESTAMPNS is not supported here"
            sent = time.perf_counter_ns()
            peer.sendall(b"data: {}\n\n")
            time.sleep(0.05)
            data, ancillary, _flags, _addr = client.recvmsg(4096, STAMP_SPACE)
            returned = time.perf_counter_ns()
            arrived = arrival_ns(ancillary, offset, returned)
    assert data == b"data: {}\n\n"
    assert sent - 1_000_000 <= arrived <= sent + 10_000_000, (arrived - sent) / 1e6
    assert returned - arrived >= 40_000_000, (returned - arrived) / 1e6


def test_without_a_kernel_stamp_the_read_time_is_used() -> None:
    assert arrival_ns([], 123, 456) == 456
    assert arrival_ns([(1, 99, b"\x00" * 16)], 123, 456) == 456


def test_stamps_can_be_mapped_onto_another_monotonic_clock() -> None:
    with (
        socket.create_server(("127.0.0.1", 0)) as server,
        socket.create_connection(server.getsockname()) as client,
    ):
        peer, _ = server.accept()
        with peer:
            offset = enable_kernel_stamps(client, time.monotonic_ns)
            assert offset is not None, "SO_TIMESTAMPNS is not supported here"
            sent = time.monotonic_ns()
            peer.sendall(b"x")
            time.sleep(0.02)
            _data, ancillary, _flags, _addr = client.recvmsg(16, STAMP_SPACE)
            arrived = arrival_ns(ancillary, offset, time.monotonic_ns())
    assert sent - 1_000_000 <= arrived <= sent + 10_000_000, (arrived - sent) / 1e6
