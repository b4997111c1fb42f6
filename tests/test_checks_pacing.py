"""The client-side limiter: under the declared RPM and TPM in any window, in virtual time."""

from __future__ import annotations

import pytest

from gatecheck.checks.pacing import Pacer, PacingTimeout


class Clock:
    """Virtual time: sleeping advances it, nothing really waits."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def pacer(clock: Clock, rpm: int | None, tpm: int | None, headroom: float = 1.0) -> Pacer:
    return Pacer(rpm, tpm, window_s=60.0, headroom=headroom, clock=clock.time, sleep=clock.sleep)


def max_in_any_window(times: list[float], window: float) -> int:
    return max(sum(1 for t in times if start <= t < start + window) for start in times)


def test_requests_never_exceed_the_rpm_in_any_minute() -> None:
    clock = Clock()
    limiter = pacer(clock, rpm=10, tpm=None)
    sent = [limiter.acquire(1).t for _ in range(35)]
    assert max_in_any_window(sent, 60.0) == 10
    assert clock.now > 1000.0 + 3 * 60  # 35 requests at 10 per minute need three full windows


def test_tokens_never_exceed_the_tpm_in_any_minute() -> None:
    clock = Clock()
    limiter = pacer(clock, rpm=None, tpm=1000)
    tickets = [limiter.acquire(300) for _ in range(7)]
    for ticket in tickets:
        in_window = [t for t in tickets if ticket.t <= t.t < ticket.t + 60.0]
        assert sum(t.tokens for t in in_window) <= 1000


def test_headroom_keeps_a_margin_below_the_declared_limit() -> None:
    clock = Clock()
    limiter = pacer(clock, rpm=10, tpm=None, headroom=0.8)
    sent = [limiter.acquire(1).t for _ in range(20)]
    assert max_in_any_window(sent, 60.0) == 8


def test_no_limits_never_waits() -> None:
    clock = Clock()
    limiter = pacer(clock, rpm=None, tpm=None)
    for _ in range(1000):
        limiter.acquire(10_000)
    assert clock.slept == []


def test_settle_replaces_the_estimate_with_the_real_cost() -> None:
    clock = Clock()
    limiter = pacer(clock, rpm=None, tpm=1000)
    first = limiter.acquire(900)
    limiter.settle(first, 100)  # the response's usage said it cost 100
    limiter.acquire(800)
    assert clock.slept == []


def test_hold_makes_every_caller_wait_out_a_retry_after() -> None:
    clock = Clock()
    limiter = pacer(clock, rpm=None, tpm=None)
    limiter.hold(7.5)
    ticket = limiter.acquire(1)
    assert ticket.t == pytest.approx(1007.5)


def test_a_request_bigger_than_the_tpm_is_admitted_into_an_empty_window() -> None:
    clock = Clock()
    limiter = pacer(clock, rpm=None, tpm=100)
    limiter.acquire(50)
    big = limiter.acquire(500)
    assert big.t >= 1000.0 + 60.0


def test_waiting_past_the_bound_raises_instead_of_hanging() -> None:
    clock = Clock()
    limiter = pacer(clock, rpm=1, tpm=None)
    limiter.acquire(1)
    with pytest.raises(PacingTimeout):
        limiter.acquire(1, max_wait_s=5.0)


def test_headroom_must_be_a_fraction() -> None:
    with pytest.raises(ValueError):
        Pacer(10, 10, headroom=1.5)


def test_every_wait_of_a_second_or_more_is_announced_with_its_reason() -> None:
    clock, lines = Clock(), []
    by_requests = Pacer(1, None, clock=clock.time, sleep=clock.sleep, label="key 2", notify=lines.append)
    by_tokens = Pacer(None, 1000, clock=clock.time, sleep=clock.sleep, notify=lines.append)
    by_requests.acquire(1)
    by_requests.acquire(1)  # the second request of a 1-RPM key waits out the (slack) minute
    by_requests.hold(100)
    by_requests.acquire(1)
    by_tokens.acquire(800)
    by_tokens.acquire(200)  # 90% of 1000 tokens: the second must wait for the first to leave
    by_tokens.hold(0.5)
    by_tokens.acquire(1)  # half a second: not worth a line
    assert lines == [
        "waiting 63 s: pacing under 1 rpm (key 2)",
        "waiting 100 s: the target's Retry-After (key 2)",
        "waiting 63 s: pacing under 1000 tpm",
    ]
    assert by_requests.describe() == "1 rpm (key 2)"
    assert Pacer(60, 1000).describe() == "60 rpm / 1000 tpm"
    assert Pacer(None, None).describe() == "no declared limits"
