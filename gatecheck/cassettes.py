"""Recordings of a conformance run, and their replay: the same verdicts, offline, without a key.

``--record DIR`` (``gatecheck conform``, ``pytest conformance``) runs the suite on a ``Recorder``
wire: every exchange a check causes (its own requests, the shared observations it computed first,
liveness probes) is kept, keys redacted, and written as one *cassette* per check,
``DIR/<target>/<check id>.json``, beside ``DIR/<target>/run.json`` (the target without its keys,
the run's settings, the checks in run order with their verdicts, the clock). The format is
documented in reports/README.md ("Recordings").

``gatecheck replay DIR`` runs the same checks on a ``Replayer`` wire: a ``ReplayClient`` answers
each request with the recorded exchange of the running check that has the same method, URL and
body (in recorded order), and raises ``ReplayMismatch`` for a request the recording does not hold
(the check then ends in a ``check-error`` FAIL, and the command says the replay diverged). Time is
a ``VirtualClock`` (``gatecheck.clock``) that sleeps instantly and stands at each exchange's
recorded instants, so timing-based verdicts (bursts, stalls, windows, Retry-After) are judged on
the recorded timing. Checks do not know they are replayed: only the wire and the clock differ.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from gatecheck import __version__, clock
from gatecheck.checks.context import PairStarter, RunSettings, Wire
from gatecheck.client import Client, Exchange
from gatecheck.config import CAPABILITIES, MODEL_ROLES, Models, Target
from gatecheck.errors import ConfigError, GatecheckError
from gatecheck.redaction import Secret, redact, redact_bytes
from gatecheck.request import Request
from gatecheck.results import CheckResult
from gatecheck.upstream.control import Control, ControlError

RUN_FILE = "run.json"
RUN_FORMAT = "gatecheck.recording"
CASSETTE_FORMAT = "gatecheck.cassette"
FORMAT_VERSION = 1
"""Changes only when a reader would break (reports/README.md says what each version holds)."""

LARGE_BODY = 16_384
"""A request body larger than this is stored as its SHA-256 and length (the context-length probe
sends megabytes); replay matches it by digest. Response bodies are always stored whole."""

_TARGET_FIELDS = (
    "rpm", "tpm", "rpm_2", "tpm_2", "ratelimit_window", "profile", "max_requests", "max_output_tokens",
    "connect_timeout", "read_timeout", "total_timeout", "max_response_bytes", "stall_seconds",
    "upstream", "upstream_model", "upstream_timeout_s", "retries",
)  # fmt: skip
"""Target settings a replay needs as they were (the checks read them); keys and TLS are not among them."""
_SETTINGS_FIELDS = ("fuzz_examples", "fuzz_seed", "close_grace_s", "deadline_s")


class ReplayMismatch(GatecheckError):
    """A replayed check sent a request its recording does not hold: the replay diverged here."""


# ---------------------------------------------------------------- one exchange as JSON


def _data(content: bytes) -> str | dict[str, str]:
    """Bytes as a JSON value: the text when they are UTF-8, else ``{"base64": ...}``."""
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(content).decode("ascii")}


def _bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    return base64.b64decode(value["base64"])


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _body_record(body: bytes) -> dict[str, Any]:
    if len(body) > LARGE_BODY:
        return {"sha256": body_digest(body), "length": len(body)}
    return {"data": _data(body)}


def request_key(method: str, url: str, body: bytes) -> str:
    """What a replayed request is matched by: method, URL and (redacted) body."""
    return f"{method} {url} {body_digest(body)}"


def _recorded_key(request: dict[str, Any]) -> str:
    body = request["body"]
    digest = body["sha256"] if "sha256" in body else body_digest(_bytes(body["data"]))
    return f"{request['method']} {request['url']} {digest}"


def _redacted_chunks(
    chunks: Sequence[tuple[int, bytes]], secrets: Sequence[Secret]
) -> list[tuple[int, bytes]]:
    """The chunks with the keys masked; chunks a key straddles are merged first (stamped with the last)."""
    whole = b"".join(data for _, data in chunks)
    clean = redact_bytes(whole, secrets)
    if clean == whole:
        return list(chunks)
    merged: list[tuple[int, bytes]] = []
    start, pending = 0, b""
    for t_ns, data in chunks:
        pending += data
        end = start + len(pending)
        if redact_bytes(whole[:end], secrets) + redact_bytes(whole[end:], secrets) == clean:
            merged.append((t_ns, redact_bytes(pending, secrets)))
            start, pending = end, b""
    return merged


def exchange_record(exchange: Exchange, epoch_ns: int, secrets: Sequence[Secret]) -> dict[str, Any]:
    """``exchange`` as a cassette entry: stamps as offsets from ``epoch_ns``, ``secrets`` masked."""
    request = exchange.request
    t_start = exchange.t_start_ns
    return {
        "request": {
            "method": request.method,
            "url": request.url,
            "headers": {name: redact(value, secrets) for name, value in request.headers.items()},
            "body": _body_record(redact_bytes(request.body, secrets)),
        },
        "status": exchange.status,
        "http_version": exchange.http_version,
        "headers": [
            [name.decode("latin-1"), redact(value.decode("latin-1"), secrets)]
            for name, value in exchange.headers.raw
        ],
        "t_start_ns": t_start - epoch_ns,
        "t_headers_ns": None if exchange.t_headers_ns is None else exchange.t_headers_ns - epoch_ns,
        "t_end_ns": exchange.t_end_ns - epoch_ns,
        "chunks": [[t - t_start, _data(data)] for t, data in _redacted_chunks(exchange.chunks, secrets)],
        "error": None if exchange.error is None else redact(exchange.error, secrets),
        "error_kind": exchange.error_kind,
        "server_closed": exchange.server_closed,
    }


def exchange_from_record(record: dict[str, Any], request: Request, epoch_ns: int) -> Exchange:
    """The recorded exchange, answering ``request`` (the one the replayed check built)."""
    t_start = record["t_start_ns"] + epoch_ns
    headers = httpx.Headers(
        [(name.encode("latin-1"), value.encode("latin-1")) for name, value in record["headers"]]
    )
    return Exchange(
        request=request,
        status=record["status"],
        headers=headers,
        chunks=[(t_start + offset, _bytes(data)) for offset, data in record["chunks"]],
        t_start_ns=t_start,
        t_headers_ns=None if record["t_headers_ns"] is None else record["t_headers_ns"] + epoch_ns,
        t_end_ns=record["t_end_ns"] + epoch_ns,
        error=record["error"],
        error_kind=record["error_kind"],
        server_closed=record["server_closed"],
        http_version=record["http_version"],
    )


# ---------------------------------------------------------------- the target, without its keys


def target_record(target: Target) -> dict[str, Any]:
    """What a replay needs of ``target`` (base_url None: the embedded gateway); keys only as their source."""

    def key(secret: Secret | None) -> dict[str, str] | None:
        return None if secret is None else {"source": secret.source}

    return {
        "name": target.name,
        "base_url": target.base_url,
        "api_key": key(target.api_key),
        "api_key_2": key(target.api_key_2),
        "api_key_env": target.api_key_env,
        "api_key_2_env": target.api_key_2_env,
        "auth": target.auth,
        "models": {role: getattr(target.models, role) for role in MODEL_ROLES},
        "capabilities": [c for c in CAPABILITIES if c in target.capabilities],
        **{name: getattr(target, name) for name in _TARGET_FIELDS},
        "context_lengths": dict(target.context_lengths),
        "headers": [
            [name, {"secret": value.source} if isinstance(value, Secret) else value]
            for name, value in target.headers
        ],
    }


def _placeholder(number: int, source: str) -> Secret:
    """A key that stands for the recorded one: never sent (nothing is), masked like a key."""
    return Secret(f"gatecheck-replay-key-{number}", source=source)


def target_from_record(record: dict[str, Any]) -> Target:
    """The recorded target, its keys replaced by placeholders (so requests carry an auth header as live)."""
    keys = {
        name: None if record[name] is None else _placeholder(number, record[name]["source"])
        for number, name in ((1, "api_key"), (2, "api_key_2"))
    }
    headers = tuple(
        (name, _placeholder(3 + number, value["secret"]) if isinstance(value, dict) else value)
        for number, (name, value) in enumerate(record["headers"])
    )
    defaults = Target()
    settings = {name: record.get(name, getattr(defaults, name)) for name in _TARGET_FIELDS}
    return Target(
        name=record["name"],
        base_url=record["base_url"],
        api_key_env=record["api_key_env"],
        api_key_2_env=record["api_key_2_env"],
        auth=record["auth"],
        models=Models(**record["models"]),
        capabilities=frozenset(record["capabilities"]),
        context_lengths=tuple(record["context_lengths"].items()),
        headers=headers,
        api_key=keys["api_key"],
        api_key_2=keys["api_key_2"],
        **settings,
    )


# ---------------------------------------------------------------- the upstream area's harness

UPSTREAM_KEY_STAND_IN = "gatecheck-replayed-upstream-key-"


def stand_in(key: str) -> str:
    """What a recording holds instead of the upstream harness's key: a text as long as the key, so
    every offset and chunk boundary holds, and a leak of the key stays a leak of the stand-in."""
    repeats = len(key) // len(UPSTREAM_KEY_STAND_IN) + 1
    return (UPSTREAM_KEY_STAND_IN * repeats)[: len(key)]


def _swap(data: bytes, swaps: Sequence[tuple[bytes, bytes]]) -> bytes:
    for old, new in swaps:
        data = data.replace(old, new)
    return data


def _swapped(exchange: Exchange, swaps: Sequence[tuple[bytes, bytes]]) -> Exchange:
    """``exchange`` with each swap's bytes replaced (same lengths: the chunks keep their boundaries)."""

    def text(value: str) -> str:
        return _swap(value.encode("latin-1", "replace"), swaps).decode("latin-1")

    whole = _swap(b"".join(data for _, data in exchange.chunks), swaps)
    chunks, start = [], 0
    for t_ns, data in exchange.chunks:
        chunks.append((t_ns, whole[start : start + len(data)]))
        start += len(data)
    request = exchange.request
    return dataclasses.replace(
        exchange,
        request=dataclasses.replace(
            request,
            body=_swap(request.body, swaps),
            headers={name: text(value) for name, value in request.headers.items()},
        ),
        headers=httpx.Headers([(name, _swap(value, swaps)) for name, value in exchange.headers.raw]),
        chunks=chunks,
        error=None if exchange.error is None else text(exchange.error),
    )


def control_key(method: str, path: str, params: Any, body: Any) -> str:
    """What a control call is matched by in a replay; a scenario's registration without its nonce
    (drawn at random live; the replay takes the recorded one)."""
    if path == "scenarios" and isinstance(body, dict):
        body = {name: value for name, value in body.items() if name != "nonce"}
    return "control " + json.dumps([method, path, params, body], sort_keys=True, separators=(",", ":"))


class _RecordingControl(Control):
    """The harness's control API, each call and its answer kept for the running check."""

    def __init__(self, url: str, recorder: Recorder) -> None:
        super().__init__(url)
        self._recorder = recorder

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        call = {"method": method, "path": path, "params": kwargs.get("params"), "json": kwargs.get("json")}
        try:
            body = super()._call(method, path, **kwargs)
        except ControlError as exc:
            self._recorder.keep_control({**call, "error": str(exc)})
            raise
        if path == "info" and isinstance(body.get("key"), str) and body["key"]:
            self._recorder.swap(body["key"])
        self._recorder.keep_control({**call, "body": body})
        return body


# ---------------------------------------------------------------- recording


class Recorder(Wire):
    """Live sockets, every exchange kept for the check that caused it; ``save`` writes the cassettes."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.epoch_ns = clock.perf_counter_ns()
        self.wall_s = clock.time()
        self.embedded_url: str | None = None
        self.upstream_pair_urls: tuple[str, str] | None = None
        self._current = ""
        self._cassettes: dict[str, list[dict[str, Any]]] = {}
        self._controls: dict[str, list[dict[str, Any]]] = {}
        self._swaps: list[tuple[bytes, bytes]] = []
        self._lock = threading.Lock()

    @contextmanager
    def embedded_gateway(self, config: Any) -> Iterator[str]:
        with super().embedded_gateway(config) as url:
            self.embedded_url = url
            yield url

    @contextmanager
    def upstream_pair(self, start: PairStarter) -> Iterator[tuple[str, str]]:
        with super().upstream_pair(start) as urls:
            self.upstream_pair_urls = urls
            yield urls

    def client(self, target: Target) -> Client:
        secrets = (
            tuple(k for k in (target.api_key, target.api_key_2) if k is not None) + target.header_secrets
        )
        return Client(target, on_exchange=lambda exchange: self._keep(exchange, secrets))

    def control(self, url: str) -> Control:
        return _RecordingControl(url, self)

    def swap(self, key: str) -> None:
        """From now on, ``key`` (the harness's) is recorded as its ``stand_in``."""
        with self._lock:
            self._swaps.append((key.encode(), stand_in(key).encode()))

    def keep_control(self, call: dict[str, Any]) -> None:
        """Keep a control call of the running check (its answer with the harness's key swapped)."""
        with self._lock:
            swapped = json.loads(_swap(_compact(call).encode(), self._swaps))
            self._controls.setdefault(self._current, []).append(swapped)

    def begin(self, check_id: str) -> None:
        with self._lock:
            self._current = check_id
            self._cassettes[check_id] = []

    def _keep(self, exchange: Exchange, secrets: tuple[Secret, ...]) -> None:
        with self._lock:
            swaps = list(self._swaps)
        if swaps:
            exchange = _swapped(exchange, swaps)
        record = exchange_record(exchange, self.epoch_ns, secrets)
        with self._lock:
            self._cassettes.setdefault(self._current, []).append(record)

    def save(
        self,
        target: Target,
        settings: RunSettings,
        verdicts: Sequence[tuple[str, str]],
        *,
        interrupted: bool = False,
    ) -> list[Path]:
        """Write ``run.json`` and a cassette per check of ``verdicts`` (check id, live verdict), in run order.

        ``target`` is the target as configured (base_url None for the embedded gateway), not the
        embedded gateway's own. Returns the files written.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        written = []
        checks = []
        for check_id, verdict in verdicts:
            exchanges = self._cassettes.get(check_id)
            name = None if exchanges is None else f"{check_id}.json"
            checks.append({"id": check_id, "verdict": verdict, "cassette": name})
            if name is not None:
                cassette = {
                    "format": CASSETTE_FORMAT,
                    "version": FORMAT_VERSION,
                    "check_id": check_id,
                    "target": target.name,
                    "verdict": verdict,
                    **({"control": self._controls[check_id]} if self._controls.get(check_id) else {}),
                    "exchanges": exchanges,
                }
                written.append(_write_json(self.directory / name, cassette))
        run = {
            "format": RUN_FORMAT,
            "version": FORMAT_VERSION,
            "gatecheck": __version__,
            "target": target_record(target),
            "embedded_url": self.embedded_url,
            "upstream_pair": None if self.upstream_pair_urls is None else list(self.upstream_pair_urls),
            "settings": {name: getattr(settings, name) for name in _SETTINGS_FIELDS},
            "clock": {"epoch_ns": self.epoch_ns, "wall_s": self.wall_s},
            "interrupted": interrupted,
            "checks": checks,
        }
        return [_write_json(self.directory / RUN_FILE, run), *written]


def _write_json(path: Path, document: dict[str, Any]) -> Path:
    """Compact JSON with one line per check (run.json) or per exchange (a cassette): readable in a
    diff, and a few times smaller than indented JSON."""
    listed = "checks" if "checks" in document else "exchanges"
    head = {k: v for k, v in document.items() if k != listed}
    items = ",\n".join(_compact(item) for item in document[listed])
    text = _compact(head)[:-1] + f',"{listed}":[\n{items}\n]}}\n'
    path.write_text(text, encoding="utf-8")
    return path


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# ---------------------------------------------------------------- replay


@dataclass
class _Entry:
    check_id: str
    key: str
    record: dict[str, Any]
    used: bool = False


@dataclass(frozen=True)
class RecordedCheck:
    """One check of a recording: its id, its live verdict, and whether it sent anything."""

    check_id: str
    verdict: str
    has_cassette: bool


@dataclass
class Replayer(Wire):
    """The recorded exchanges instead of the network, on a virtual clock standing at the recorded instants.

    ``subset`` is true when only some of the recorded checks are replayed: a shared observation a
    replayed check computes may then have been recorded under an earlier check that is not
    replayed, and its exchanges are taken from there.
    """

    directory: Path
    target: Target
    settings_record: dict[str, Any]
    checks: list[RecordedCheck]
    embedded_url: str | None
    upstream_pair_urls: tuple[str, str] | None
    virtual_clock: clock.VirtualClock
    epoch_ns: int
    recorded_with: str
    interrupted: bool
    subset: bool = False
    misses: list[str] = field(default_factory=list)
    _entries: list[_Entry] = field(default_factory=list)
    _current: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def load(cls, directory: Path) -> Replayer:
        """The recording in ``directory`` (its ``run.json`` and cassettes); ConfigError when it is not one."""
        run = _read_json(directory / RUN_FILE, RUN_FORMAT)
        entries: list[_Entry] = []
        checks = []
        for item in run["checks"]:
            checks.append(RecordedCheck(item["id"], item["verdict"], item["cassette"] is not None))
            if item["cassette"] is None:
                continue
            cassette = _read_json(directory / item["cassette"], CASSETTE_FORMAT)
            entries += [_Entry(item["id"], _recorded_key(r["request"]), r) for r in cassette["exchanges"]]
            entries += [
                _Entry(item["id"], control_key(c["method"], c["path"], c["params"], c["json"]), c)
                for c in cassette.get("control", [])
            ]
        epoch = int(run["clock"]["epoch_ns"])
        return cls(
            directory=directory,
            target=target_from_record(run["target"]),
            settings_record=run["settings"],
            checks=checks,
            embedded_url=run["embedded_url"],
            upstream_pair_urls=None if run.get("upstream_pair") is None else tuple(run["upstream_pair"]),
            virtual_clock=clock.VirtualClock(epoch, float(run["clock"]["wall_s"])),
            epoch_ns=epoch,
            recorded_with=run["gatecheck"],
            interrupted=bool(run["interrupted"]),
            _entries=entries,
        )

    def settings(self, **overrides: Any) -> RunSettings:
        """The recorded run's settings, on this wire."""
        return RunSettings(**{**self.settings_record, **overrides, "wire": self})

    @contextmanager
    def embedded_gateway(self, config: Any) -> Iterator[str]:
        if self.embedded_url is None:
            raise ConfigError("recording", str(self.directory), "a recording of the embedded gateway's run")
        yield self.embedded_url

    @contextmanager
    def upstream_pair(self, start: PairStarter) -> Iterator[tuple[str, str]]:
        if self.upstream_pair_urls is None:
            raise ConfigError("recording", str(self.directory), "a recording of the embedded upstream pair")
        yield self.upstream_pair_urls

    def client(self, target: Target) -> Client:
        return ReplayClient(target, self)

    def control(self, url: str) -> Control:
        return _ReplayControl(url, self)

    def take_control(self, key: str) -> dict[str, Any]:
        """The recorded control call ``key`` of the running check; ``ReplayMismatch`` when there is none."""
        with self._lock:
            entry = self._find(key)
            if entry is None:
                miss = f"{self._current}: {key}"
                self.misses.append(miss)
                raise ReplayMismatch(f"the recording holds no harness call {key} of {self._current}")
            entry.used = True
        return entry.record

    def begin(self, check_id: str) -> None:
        with self._lock:
            self._current = check_id

    def take(self, request: Request) -> Exchange:
        """The recorded answer to ``request`` in the running check; ``ReplayMismatch`` when there is none."""
        secrets = request.secrets
        key = request_key(request.method, request.url, redact_bytes(request.body, secrets))
        with self._lock:
            entry = self._find(key)
            if entry is None:
                shown = redact(request.body[:200].decode("utf-8", "replace"), secrets)
                miss = f"{self._current}: {request.method} {request.url} {shown}"
                self.misses.append(miss)
                raise ReplayMismatch(
                    f"the recording holds no answer to this request of {self._current}: "
                    f"{request.method} {request.url} (body {shown!r}); the check sent something else live"
                )
            entry.used = True
        exchange = exchange_from_record(entry.record, request, self.epoch_ns)
        self.virtual_clock.reach(exchange.t_start_ns)
        self.virtual_clock.reach(exchange.t_end_ns)
        return exchange

    def _find(self, key: str) -> _Entry | None:
        mine = (e for e in self._entries if e.check_id == self._current and not e.used and e.key == key)
        found = next(mine, None)
        if found is None and self.subset:
            found = next((e for e in self._entries if not e.used and e.key == key), None)
        return found

    def unused(self) -> dict[str, int]:
        """Recorded exchanges nobody asked for, per check (the replayed check sent less than live)."""
        left: dict[str, int] = {}
        for entry in self._entries:
            if not entry.used:
                left[entry.check_id] = left.get(entry.check_id, 0) + 1
        return left


class ReplayClient(Client):
    """A ``Client`` that never touches the network: each request is answered from the recording."""

    def __init__(self, target: Target, replayer: Replayer) -> None:
        super().__init__(target, transport=httpx.MockTransport(_no_network))
        self._replayer = replayer

    def exchange(self, request: Request) -> Exchange:
        return self._replayer.take(request)


class _ReplayControl(Control):
    """The harness's control API answered from the recording (a scenario keeps its recorded nonce)."""

    def __init__(self, url: str, replayer: Replayer) -> None:
        super().__init__(url, transport=httpx.MockTransport(_no_network))
        self._replayer = replayer

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        key = control_key(method, path, kwargs.get("params"), kwargs.get("json"))
        return _answer(self._replayer.take_control(key))

    def register(self, scenario: str, **params: Any) -> str:
        record = self._replayer.take_control(
            control_key("POST", "scenarios", None, {"scenario": scenario, **params})
        )
        _answer(record)
        return str(record["json"]["nonce"])


def _answer(record: dict[str, Any]) -> Any:
    if "error" in record:
        raise ControlError(record["error"])
    return record["body"]


def _no_network(request: httpx.Request) -> httpx.Response:
    raise ReplayMismatch(f"a replay sends nothing: {request.method} {request.url}")


def _read_json(path: Path, expected_format: str) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError("recording", str(path), f"a readable file ({exc.strerror})") from None
    except ValueError as exc:
        raise ConfigError("recording", str(path), f"JSON ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != expected_format:
        raise ConfigError("recording", str(path), f'a file of format "{expected_format}"')
    if document.get("version") != FORMAT_VERSION:
        raise ConfigError(
            "recording", str(path), f"format version {FORMAT_VERSION} (this gatecheck reads no other)"
        )
    return document


def recordings(directory: Path) -> list[Path]:
    """The recorded runs in ``directory``: itself when it holds a ``run.json``, else its subdirectories."""
    if (directory / RUN_FILE).is_file():
        return [directory]
    found = sorted(path.parent for path in directory.glob(f"*/{RUN_FILE}"))
    if not found:
        raise ConfigError(
            "recording", str(directory), f"a directory written by --record (no {RUN_FILE} in it)"
        )
    return found


# ---------------------------------------------------------------- a whole replay


@dataclass
class Replayed:
    """What replaying one recorded run gave: the results, and how they compare with the recording."""

    replayer: Replayer
    results: list[CheckResult]
    changed: list[str]
    """``check: recorded FAIL, replayed PASS`` for each verdict that differs from the live one."""
    unknown: list[str]
    """Recorded check ids this gatecheck no longer has (not replayed)."""

    @property
    def diverged(self) -> bool:
        """A replayed check sent a request the recording does not hold."""
        return bool(self.replayer.misses)


def replay(
    directory: Path,
    checks: Collection[str] | None = None,
    on_result: Callable[[CheckResult], None] | None = None,
) -> Replayed:
    """Run the checks recorded in ``directory`` (all, or those in ``checks``) again on the recording."""
    from gatecheck.checks import load_all, run_check
    from gatecheck.checks.session import open_session

    replayer = Replayer.load(directory)
    registry = load_all()
    wanted = [c for c in replayer.checks if checks is None or c.check_id in checks]
    replayer.subset = len(wanted) < len(replayer.checks)
    results: list[CheckResult] = []
    changed: list[str] = []
    unknown = [c.check_id for c in wanted if c.check_id not in registry]
    with clock.using(replayer.virtual_clock), open_session(replayer.target, replayer.settings()) as session:
        for recorded in (c for c in wanted if c.check_id in registry):
            result = run_check(session, registry[recorded.check_id])
            results.append(result)
            if on_result is not None:
                on_result(result)
            if result.verdict != recorded.verdict:
                changed.append(f"{recorded.check_id}: recorded {recorded.verdict}, replayed {result.verdict}")
    return Replayed(replayer, results, changed, unknown)
