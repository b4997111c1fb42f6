"""gatecheck's locust users: I/O only, everything else is sans-IO elsewhere.

Imports gevent and locust (so only locustfiles import this; the plugin never does).

HTTP client, chosen by measurement (``benchmarks/load_capacity.py``): geventhttpclient, the
library under locust's FastHttpUser, used directly so the body can be read as it arrives. Locust's
``iter_content``/``iter_lines`` wait for 1-4 KiB before yielding and FastHttpUser times a stream at
its headers; here every read of the body is stamped and handed to the stamper in
``gatecheck.load.stampers`` (the project's one SSE decoder). The stamp is the kernel's arrival time of the
read's first packet (Linux ``SO_TIMESTAMPNS``, mapped onto ``perf_counter_ns``), so a busy locust
process does not add its own scheduling delay to TTFT and ITL; elsewhere, and over TLS (an SSL
socket has no ``recvmsg``), it is the moment ``recv`` returned. That relies on two attributes of
geventhttpclient's response (``_sock`` and ``_body_buffer``); ``kernel_stamps``, ``_stall_bound``
and ``_read_available`` are the only places that touch them. The client gets the target's extra
headers, TLS context and proxy from ``gatecheck.load.options.http_options`` (the conformance
client's ``gatecheck.net``); after a stream's headers each read waits at most ``--stall-seconds``
(``stream-stalled``).

Every request goes through the plugin's guard (``gatecheck.load.guard``): it waits out the back-off
after connection failures and is not sent once the request budget is spent; a response is read up
to ``--max-response-bytes`` (the connection is closed beyond it) and decoded when it comes with a
gzip or deflate ``Content-Encoding``.

Users (import them all into the locustfile; the plugin keeps the one the options ask for, unless
classes are named on the command line):
``ChatStreamUser``, ``ChatUser``, ``MessagesStreamUser``, ``MessagesUser`` (closed loop: a user
sends its next request when the previous one ends), ``RateUser`` (open model: requests start on a
schedule whatever the latency) and ``LimitsUser`` (the rate-limit probes of ``gatecheck.load.limits``).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from http.client import HTTPException
from typing import Any, ClassVar
from urllib.parse import urlsplit

import gevent
import gevent.pool
from geventhttpclient import HTTPClient
from geventhttpclient.response import HTTPSocketPoolResponse
from locust import User, constant, task
from locust.exception import StopUser

from gatecheck.calibration import CALIBRATION_UNITS
from gatecheck.kernelstamps import STAMP_SPACE, arrival_ns, enable_kernel_stamps
from gatecheck.load.limits import LimitKey, Phase, ProbePlan, ProbeRecord, calibrated, retry_wait_s
from gatecheck.load.plugin import plugin_for
from gatecheck.load.stampers import Assembler, ResponseRefused, Stamper, decoded, stamper_for
from gatecheck.load.timing import StreamTiming
from gatecheck.load.workload import (
    ArrivalSchedule,
    Dialect,
    RequestFactory,
    auth_headers,
    request_path,
    with_nonce,
)

_RECV_BYTES = 65536
_ACCEPT_SSE = "text/event-stream"
_LIMIT_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining")
_INFLIGHT_GRACE_S = 1.0
_FRESH_WINDOW = 1.05
"""Waiting this many windows between two probes of a key lets its current window end."""


def kernel_stamps(response: HTTPSocketPoolResponse) -> int | None:
    """Have the kernel stamp the packets of ``response`` (see ``gatecheck.kernelstamps``); not over
    TLS: an SSL socket has no ``recvmsg`` (and a decrypted read is no packet), so its reads are
    stamped when they return."""
    sock = response._sock
    if sock is None or hasattr(sock, "getpeercert"):
        return None
    return enable_kernel_stamps(sock)


def _stall_bound(response: HTTPSocketPoolResponse, seconds: float | None) -> float | None:
    """Bound each read of ``response`` by ``seconds`` (None: leave it); returns the bound it replaced,
    to be put back before the connection goes back to the pool."""
    sock = response._sock
    if seconds is None or sock is None:
        return None
    previous: float | None = sock.gettimeout()
    sock.settimeout(seconds)
    return previous


def _read_available(response: HTTPSocketPoolResponse, offset_ns: int | None) -> tuple[bytes, int] | None:
    """Body bytes available now and when they arrived, waiting for one read if none are;
    None at the end of the body. The time is the kernel's arrival stamp of the read's first packet
    when ``offset_ns`` is known (see ``kernel_stamps``), else the moment the read returned."""
    buffered = response._body_buffer
    t_ns = time.perf_counter_ns()
    while not buffered:
        if response.message_complete:
            return None
        sock = response._sock
        if sock is None:
            return None
        if offset_ns is None:
            data = sock.recv(_RECV_BYTES)
            t_ns = time.perf_counter_ns()
        else:
            data, ancillary, _flags, _addr = sock.recvmsg(_RECV_BYTES, STAMP_SPACE)
            t_ns = arrival_ns(ancillary, offset_ns, time.perf_counter_ns())
        response.feed(data)
        if not data and not buffered:
            return None
    chunk = bytes(buffered)
    del buffered[:]
    return chunk, t_ns


def _header(response: HTTPSocketPoolResponse, name: str) -> str | None:
    """A header's value (the first one when it is repeated)."""
    value = response.get(name)
    return value[0] if isinstance(value, list) else value


def transport_code(exc: BaseException, timing: StreamTiming) -> str:
    """The error code of a transport failure (its kind, never its message: that may quote the target)."""
    if isinstance(exc, ConnectionRefusedError):
        return "connect-refused"
    if isinstance(exc, TimeoutError):
        if timing.t_headers_ns is None:
            return "timeout"
        return "stream-stalled" if timing.streamed else "read-timeout"
    return f"transport-{type(exc).__name__}"


def exchange(
    http: HTTPClient,
    path: str,
    body: bytes,
    headers: dict[str, str],
    dialect: Dialect,
    *,
    streamed: bool,
    total_timeout_s: float,
    max_bytes: int,
    assembler: Assembler | None = None,
    stall_s: float | None = None,
) -> tuple[StreamTiming, bool]:
    """Send one request and stamp its response as it arrives; never raises for transport errors.

    Returns the timing and whether the response carried the ``X-RateLimit-*`` headers. At most
    ``max_bytes`` are read (on the wire and once decoded); ``assembler`` checks a 2xx stream; after
    the headers of a stream every read waits at most ``stall_s`` (then ``stream-stalled``).
    """
    timing = StreamTiming(t_start_ns=time.perf_counter_ns(), wall_start_s=time.time(), streamed=streamed)
    limit_headers = False
    response: HTTPSocketPoolResponse | None = None
    stamper: Stamper | None = None
    code: str | None = None
    try:
        with gevent.Timeout(total_timeout_s):
            response = http.request("POST", path, body=body, headers=headers)
            timing.t_headers_ns = time.perf_counter_ns()
            timing.status = response.status_code
            timing.retry_after = _header(response, "retry-after")
            limit_headers = all(name in response for name in _LIMIT_HEADERS)
            reader = stamper_for(
                timing, dialect, timing.status, assembler=assembler, max_event_bytes=max_bytes
            )
            stamper = decoded(reader, _header(response, "content-encoding"), max_bytes)
            bound = _stall_bound(response, stall_s if streamed else None)
            try:
                _read_body(response, stamper, max_bytes)
            finally:
                _stall_bound(response, bound)
    except gevent.Timeout:
        code = "total-timeout"
    except ResponseRefused as exc:
        code = exc.code
    except (OSError, HTTPException, RuntimeError) as exc:  # a transport failure is an outcome, not a crash
        code = transport_code(exc, timing)
    finally:
        end = time.perf_counter_ns()
        if stamper is not None:
            stamper.finish(end)
        if code is not None:
            timing.error_code = code
        if timing.t_end_ns is None:
            timing.t_end_ns = end
        if response is not None:
            response.release()
    return timing, limit_headers


def _read_body(response: HTTPSocketPoolResponse, stamper: Stamper, max_bytes: int) -> None:
    """Feed the body to the stamper as it arrives; refuse it beyond ``max_bytes`` on the wire.

    Stamps never go back: bytes already buffered with the headers are stamped when they are
    handed over, later than the kernel's stamp of packets that arrived meanwhile; bytes later in
    the stream did not arrive earlier, so such a stamp is raised to the previous one (a negative
    inter-token gap would be an artefact)."""
    offset_ns = kernel_stamps(response)
    received = 0
    last_ns = 0
    piece = _read_available(response, offset_ns)
    while piece is not None:
        data, t_ns = piece
        received += len(data)
        if received > max_bytes:
            raise ResponseRefused("response-too-large")
        last_ns = max(t_ns, last_ns)
        stamper.feed(data, last_ns)
        piece = _read_available(response, offset_ns)


class LoadUser(User):
    """Shared part of gatecheck's users: settings from the plugin, one HTTP client, request bodies."""

    abstract = True
    wait_time = constant(0)
    dialect: ClassVar[Dialect] = "openai"
    streamed: ClassVar[bool] = True
    concurrency: ClassVar[int] = 1

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.plugin = plugin_for(environment)
        self.settings = self.plugin.settings()
        index = self.plugin.next_user_index()
        self.factory = RequestFactory(
            model=self.settings.model,
            dialect=self.request_dialect(),
            stream=self.request_streamed(),
            prompt_tokens=self.settings.prompt_tokens,
            output_tokens=self.settings.output_tokens,
            include_usage=self.settings.include_usage,
            ignore_eos=self.settings.ignore_eos,
            dataset=self.settings.dataset,
            rng=random.Random(self.settings.seed * 1_000_003 + index),
            max_output_tokens=self.settings.max_output_tokens,
        )
        self.base_path = urlsplit(self.settings.host).path.rstrip("/")
        self.http = HTTPClient.from_url(
            self.settings.host, concurrency=self.client_concurrency(), **self.plugin.http_options()
        )
        settings = self.settings
        self.stall_s = (
            settings.stall_timeout_s if settings.stall_timeout_s < settings.read_timeout_s else None
        )

    def request_dialect(self) -> Dialect:
        """The API this user speaks."""
        return self.dialect

    def request_streamed(self) -> bool:
        """Whether this user asks for streams."""
        return self.streamed

    def client_concurrency(self) -> int:
        """Connections this user may hold at once."""
        return self.concurrency

    def on_stop(self) -> None:
        """Close the user's connections."""
        self.http.close()

    def send(
        self, body: dict[str, Any], group: str, key: str | None = None
    ) -> tuple[StreamTiming, bool] | None:
        """POST one request, record it in ``group`` and return its raw timing; None when the
        budget is spent (nothing was sent). Waits out the back-off after connection failures."""
        plugin = self.plugin
        wait = plugin.guard.backoff_s()
        if wait > 0:
            gevent.sleep(wait)
        if not plugin.take():
            return None
        dialect = self.request_dialect()
        streamed = bool(body.get("stream"))
        nonces = plugin.nonces
        nonce = nonces.next() if nonces is not None and streamed else None
        if nonce is not None:
            body = with_nonce(body, nonce)
        headers = auth_headers(key or self.settings.api_key, self.settings.auth, dialect)
        if streamed:
            headers["Accept"] = _ACCEPT_SSE
        timing, limit_headers = exchange(
            self.http,
            self.base_path + request_path(dialect),
            json.dumps(body).encode(),
            headers,
            dialect,
            streamed=streamed,
            total_timeout_s=self.settings.total_timeout_s,
            max_bytes=self.settings.max_response_bytes,
            assembler=plugin.assembler(dialect) if streamed else None,
            stall_s=self.stall_s,
        )
        plugin.record(group, timing, self.request_kind(), self.base_path + request_path(dialect), nonce)
        return timing, limit_headers

    def request_kind(self) -> str:
        """The request type shown in locust's statistics."""
        api = "messages" if self.request_dialect() == "anthropic" else "chat"
        return f"{api}-stream" if self.request_streamed() else api


class _ClosedLoopUser(LoadUser):
    """One request after another, as fast as the gateway answers."""

    abstract = True

    @task
    def one_request(self) -> None:
        """Send the next request of the workload; stop once the budget is spent."""
        if self.send(self.factory.body(), self.plugin.group_now()) is None:
            raise StopUser()


class ChatStreamUser(_ClosedLoopUser):
    """Streaming OpenAI chat completions (usage requested with ``stream_options.include_usage``)."""


class ChatUser(_ClosedLoopUser):
    """Non-streaming OpenAI chat completions."""

    streamed = False


class MessagesStreamUser(_ClosedLoopUser):
    """Streaming Anthropic messages."""

    dialect = "anthropic"


class MessagesUser(_ClosedLoopUser):
    """Non-streaming Anthropic messages."""

    dialect = "anthropic"
    streamed = False


def drive(
    schedule: ArrivalSchedule,
    until_ns: int,
    pool: gevent.pool.Pool,
    send: Callable[[], object],
    *,
    on_due: Callable[[int, bool], None],
    stop: Callable[[], bool] = lambda: False,
    ready: Callable[[], bool] = lambda: True,
) -> None:
    """Start ``send`` in its own greenlet at every due time of ``schedule`` before ``until_ns``.

    A request never waits for an earlier one: when the pool of in-flight requests is full (or
    ``ready()`` says no: the back-off after connection failures), the due request is skipped and
    reported (``on_due(lag_ns, started=False)``) rather than delayed.
    """
    while not stop():
        due = schedule.next_ns()
        if due >= until_ns:
            return
        wait_s = (due - time.perf_counter_ns()) / 1e9
        if wait_s > 0:
            gevent.sleep(wait_s)
        if stop():
            return
        lag = time.perf_counter_ns() - due
        started = not pool.full() and ready()
        if started:
            pool.spawn(send)
        on_due(lag, started)


class RateUser(LoadUser):
    """Open-model arrivals at ``--request-rate`` (shared by all RateUsers), constant or Poisson.

    Requests start on schedule whatever the latency, each in its own greenlet, at most
    ``--max-in-flight`` at once per user; achieved rate and schedule lag are reported.
    """

    def request_dialect(self) -> Dialect:
        """The dialect chosen with ``--dialect``."""
        return self.settings.dialect

    def request_streamed(self) -> bool:
        """Streaming as chosen with ``--stream``."""
        return self.settings.stream

    def client_concurrency(self) -> int:
        """One connection per request in flight."""
        return self.settings.max_in_flight

    @task
    def generate(self) -> None:
        """Run the arrival schedule until the test stops."""
        rate = self.settings.request_rate / max(self.plugin.total_users(), 1)
        schedule = ArrivalSchedule(
            rate,
            self.settings.arrival,
            time.perf_counter_ns(),
            seed=self.settings.seed + self.plugin.next_user_index(),
        )
        pool = gevent.pool.Pool(self.settings.max_in_flight)
        forever = time.perf_counter_ns() + 10**18
        guard = self.plugin.guard
        try:
            drive(
                schedule,
                forever,
                pool,
                lambda: self.send(self.factory.body(), "rate"),
                on_due=self.plugin.record_due,
                stop=lambda: guard.spent,
                ready=lambda: guard.backoff_s() <= 0,
            )
            pool.join(timeout=self.settings.total_timeout_s + _INFLIGHT_GRACE_S)
        finally:
            pool.kill(block=False)
        raise StopUser()


class LimitsUser(LoadUser):
    """Runs the RPM then the TPM probe for one key of ``--limits-key`` (one user per key)."""

    streamed = False

    def request_dialect(self) -> Dialect:
        """The dialect chosen with ``--dialect``."""
        return self.settings.dialect

    def client_concurrency(self) -> int:
        """Enough connections for the probe's open-loop driver."""
        return self.settings.max_in_flight

    @task
    def probe(self) -> None:
        """Probe this user's key, then tell the plugin (which ends the run after the last key)."""
        key = self.plugin.next_limits_key()
        try:
            if key is not None:
                self._probe_key(key)
        finally:
            self.plugin.limits_key_done()
        raise StopUser()

    def _probe_key(self, key: LimitKey) -> None:
        secret = self.plugin.key_for(key)
        plans = [self._sized(plan, secret) for plan in self.settings.probe_plans(key)]
        for index, plan in enumerate(p for p in plans if not p.not_checked):
            if self.plugin.guard.spent:
                return
            if index:
                gevent.sleep(plan.window_s * _FRESH_WINDOW)
            _ProbeRun(self, plan, secret).run()

    def _sized(self, plan: ProbePlan, secret: str) -> ProbePlan:
        """A TPM plan sized in the target's tokens: one calibration request, then a window's wait."""
        if plan.kind != "tpm":
            return plan
        record = _ProbeRun(self, plan, secret).calibrate()
        gevent.sleep(plan.window_s * _FRESH_WINDOW)
        return calibrated(plan, record)


def _never() -> bool:
    return False


def _ignore_due(lag_ns: int, started: bool) -> None:
    """Probes do not report schedule lag (their timing is in their records)."""


class _ProbeRun:
    """One probe of ``gatecheck.load.limits``: burst until a 429, wait Retry-After and retry, sustain."""

    def __init__(self, user: LimitsUser, plan: ProbePlan, secret: str) -> None:
        self.user = user
        self.plan = plan
        self.secret = secret
        self.t0 = time.perf_counter_ns()
        self.limited: list[ProbeRecord] = []
        self.pool = gevent.pool.Pool(user.settings.max_in_flight)

    def run(self) -> None:
        """The three phases; the sustain schedule starts with the retry, so windows line up."""
        plan = self.plan
        self.drive("burst", self.schedule(), plan.burst_timeout_s, stop=lambda: bool(self.limited))
        wait = retry_wait_s(self.limited, plan)
        gevent.sleep(plan.window_s if wait is None else wait)
        schedule = self.schedule()
        if wait is not None:
            schedule.next_ns()
            self.send("retry")
        self.drive("sustain", schedule, plan.sustain_s)

    def schedule(self) -> ArrivalSchedule:
        """Constant arrivals at the plan's rate from now."""
        return ArrivalSchedule(self.plan.rate_per_s, "constant", time.perf_counter_ns())

    def drive(
        self, phase: Phase, schedule: ArrivalSchedule, seconds: float, stop: Callable[[], bool] = _never
    ) -> None:
        """Send on schedule for ``seconds`` from its start (or until ``stop()``), then await the rest."""
        until = schedule.start_ns + int(seconds * 1e9)
        guard = self.user.plugin.guard
        drive(
            schedule,
            until,
            self.pool,
            lambda: self.send(phase),
            on_due=_ignore_due,
            stop=lambda: stop() or guard.spent,
        )
        self.pool.join(timeout=self.user.settings.total_timeout_s + _INFLIGHT_GRACE_S)

    def calibrate(self) -> ProbeRecord | None:
        """One request of ``CALIBRATION_UNITS`` prompt words; its record's tokens are the prompt tokens.

        None when the budget is spent (nothing was sent: the plan is then not checked).
        """
        plan = self.plan
        body = self.user.factory.probe_body(CALIBRATION_UNITS, 1)
        answer = self.user.send(body, f"limits:{plan.name}", self.secret)
        if answer is None:
            return None
        timing, headers = answer
        tokens = timing.prompt_tokens
        record = ProbeRecord(
            plan.name,
            "calibrate",
            0.0,
            timing.status,
            tokens or 0,
            tokens is not None,
            timing.retry_after,
            headers,
        )
        self.user.plugin.record_probe(record)
        return record

    def send(self, phase: Phase) -> ProbeRecord | None:
        """One probe request, recorded for the verdict (None: the budget is spent)."""
        plan = self.plan
        sent = (time.perf_counter_ns() - self.t0) / 1e9
        body = self.user.factory.probe_body(plan.prompt_words, plan.max_tokens)
        answer = self.user.send(body, f"limits:{plan.name}", self.secret)
        if answer is None:
            return None
        timing, headers = answer
        tokens = (timing.prompt_tokens or 0) + (timing.output_tokens or 0)
        record = ProbeRecord(
            plan.name,
            phase,
            sent,
            timing.status,
            tokens or plan.cost_tokens,
            timing.output_tokens is not None,
            timing.retry_after,
            headers,
        )
        self.user.plugin.record_probe(record)
        if record.status == 429:
            self.limited.append(record)
        return record
