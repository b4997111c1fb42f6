"""gatecheck._headers: the one Retry-After reading, shared by the checks and the load test."""

from __future__ import annotations

import calendar
import time
from collections.abc import Iterator

import httpx
import pytest

from gatecheck._headers import parse_retry_after
from gatecheck.checks.context import retry_after_seconds
from gatecheck.client import Exchange, Request
from gatecheck.load.limits import ProbePlan, ProbeRecord, retry_wait_s
from gatecheck.load.timing import StreamTiming, derive

NOW = calendar.timegm((1994, 11, 6, 8, 49, 27))
"""Ten seconds before the dates below, read as UTC."""
DATES = (
    "Sun, 06 Nov 1994 08:49:37 GMT",  # IMF-fixdate, the preferred form
    "Sunday, 06-Nov-94 08:49:37 GMT",  # the obsolete RFC 850 form
    "Sun Nov  6 08:49:37 1994",  # the obsolete asctime form: no zone, UTC by definition
    "Sun, 06 Nov 1994 08:49:37 -0000",  # an explicitly unknown zone
)


@pytest.fixture
def local_zone_far_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time zone at UTC+8, so a date read as local time would be 8 hours off."""
    monkeypatch.setenv("TZ", "UTC-8")  # POSIX: the name "UTC", 8 hours east of Greenwich
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("date", DATES)
def test_every_http_date_form_is_utc_whatever_the_local_zone(
    date: str, local_zone_far_from_utc: None
) -> None:
    assert parse_retry_after(date, now_s=NOW) == pytest.approx(10.0)


def test_a_past_date_is_no_wait_and_garbage_is_none() -> None:
    assert parse_retry_after(DATES[0], now_s=NOW + 60) == 0.0
    assert parse_retry_after("", now_s=NOW) is None
    assert parse_retry_after("-5", now_s=NOW) is None
    assert parse_retry_after("1.5", now_s=NOW) is None
    assert parse_retry_after("Sun, 06 Nov 1994", now_s=NOW) is None


def test_checks_and_load_read_a_zoneless_date_alike(local_zone_far_from_utc: None) -> None:
    """The checks' retry wait, the load metrics and the limits probe all use the one reading."""
    in_an_hour = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(time.time() + 3600))
    exchange = Exchange(
        Request("GET", "http://h/", {}), status=429, headers=httpx.Headers({"Retry-After": in_an_hour})
    )
    assert retry_after_seconds(exchange, default=-1.0) == pytest.approx(3600, abs=5)
    timing = StreamTiming(t_start_ns=0, wall_start_s=0.0, t_end_ns=1, status=429, retry_after=in_an_hour)
    assert derive(timing).retry_after_s == pytest.approx(3600, abs=5)
    plan = ProbePlan(
        "k", "rpm", limit=10, window_s=7200.0, rate_per_s=1.0, windows=1, prompt_words=1, max_tokens=1
    )
    record = ProbeRecord(plan.name, "burst", 0.0, 429, 1, True, in_an_hour, False)
    assert retry_wait_s([record], plan) == pytest.approx(3600, abs=5)
