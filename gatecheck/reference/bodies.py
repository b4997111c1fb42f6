"""Request bodies within bounds: how big, how deep, how many values, which numbers, and where the work runs.

Limits (each a 4xx in the error dialect, never a 500):

- a body over ``GatewayConfig.max_body_mib`` (8 MiB) gets 413 without being read: at once when its
  Content-Length says so, as soon as it passes the limit otherwise (nothing past it is buffered);
- JSON nested more than ``MAX_DEPTH`` levels, holding more than ``MAX_VALUES`` values, or with
  NaN, Infinity or a number beyond a double's range (``1e400``) gets 400 invalid_json. Python's
  ``json`` accepts NaN and Infinity; the documents' JSON (RFC 8259) has no such numbers.

Where the work runs. A body of at most ``SMALL_BODY_BYTES`` is parsed by the C parser on the event
loop (well under a millisecond for real requests, a few at worst). A bigger body, or one whose
Content-Length is not given, is read while holding one of ``LARGE_BODY_SLOTS``, so at most that
many big bodies are in memory at once whatever the number of clients; it is then parsed,
validated and answered in the gateway's one worker thread (``Intake.run``), by ``json``'s Python
scanner: the limits are checked as it goes, and the interpreter hands the GIL back to the event
loop every few milliseconds, which one long C call (``json.loads`` of 8 MiB of empty arrays takes
seconds) would not. Strings are still scanned in C, so a 1M-word prompt parses in milliseconds.
"""

from __future__ import annotations

import asyncio
import json
import json.decoder
import json.scanner
import math
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, nullcontext
from typing import Any, TypeVar

from aiohttp import web

from gatecheck._types import JSON
from gatecheck.reference import errors as E
from gatecheck.reference.arrival import arrived_at
from gatecheck.reference.guard import GuardedProtocol

SMALL_BODY_BYTES = 16 * 1024
"""Bodies up to this size are handled on the event loop (when valid and cheap to answer)."""

LARGE_BODY_SLOTS = 2
"""Bigger bodies read or handled at once; the others wait, unread (TCP flow control holds them)."""

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects accepted (the body object itself is level 1)."""

MAX_VALUES = 200_000
"""Most JSON values in one body (a 100k-message conversation; ~0.5 s of parsing in the worker)."""

T = TypeVar("T")


class BodyRefused(ValueError):
    """The body is JSON the gateway will not take (too deep, too many values, a non-finite number)."""


class Intake:
    """Reading bodies within the size limit, the slots of big bodies, and the worker thread."""

    def __init__(self, max_body_bytes: int) -> None:
        self.max_body_bytes = max_body_bytes
        self._slots = asyncio.Semaphore(LARGE_BODY_SLOTS)
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="gatecheck-gateway-work")

    @asynccontextmanager
    async def body(
        self, request: web.Request, connection: GuardedProtocol | None
    ) -> AsyncIterator[tuple[bytearray, float]]:
        """``(raw body, arrival time)``; a big body's slot is held until the block ends."""
        length = request.content_length
        if length is not None and length > self.max_body_bytes:
            raise self._too_large()
        small = length is not None and length <= SMALL_BODY_BYTES
        async with nullcontext() if small else self._slots:
            if connection is not None:
                connection.reading_body()
            raw = await self._read(request)
            t0 = arrived_at(request)  # the read that completed the body
            if connection is not None:
                connection.answering()
            yield raw, t0

    async def run(self, work: Callable[[], T]) -> T:
        """``work()`` in the worker thread (one at a time: big work queues instead of piling up)."""
        return await asyncio.get_running_loop().run_in_executor(self._worker, work)

    def close(self) -> None:
        """Drop queued work; what runs finishes in the background (every piece of work is bounded)."""
        self._worker.shutdown(wait=False, cancel_futures=True)

    async def _read(self, request: web.Request) -> bytearray:
        raw = bytearray()
        try:
            while chunk := await request.content.readany():
                raw += chunk
                if len(raw) > self.max_body_bytes:
                    raise self._too_large()
        except web.RequestPayloadError as exc:
            raise E.ApiError(E.INVALID_JSON, f"The request body could not be read: {exc}") from None
        return raw

    def _too_large(self) -> E.ApiError:
        limit = self.max_body_bytes // (1024 * 1024)
        return E.ApiError(E.TOO_LARGE, f"Request body too large: the limit is {limit} MiB", param="body")


def parse_json(raw: bytearray) -> JSON:
    """The body as JSON within the limits; a 400 ``ApiError`` (invalid_json) otherwise.

    A big body is decoded by the limited Python scanner and ``raw`` is emptied once decoded (the
    text is all that is needed), so a big body is not held twice.
    """
    try:
        if len(raw) <= SMALL_BODY_BYTES:
            return _parse_small(raw)
        return _LimitedDecoder().parse(raw)
    except BodyRefused as exc:
        raise E.ApiError(E.INVALID_JSON, f"Unacceptable JSON body: {exc}") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, int digits beyond Python's limit
        raise E.ApiError(E.INVALID_JSON, f"Malformed JSON body: {exc}") from None


def _parse_small(raw: bytearray) -> JSON:
    try:
        value: JSON = json.loads(raw, parse_float=_finite_float, parse_constant=_no_constant)
    except RecursionError:
        raise _too_deep() from None
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH:  # otherwise it cannot nest deeper
        _check_depth(value)
    return value


def _check_depth(value: JSON) -> None:
    level = [value] if isinstance(value, dict | list) else []
    depth = 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            raise _too_deep()
        level = [
            child
            for node in level
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, dict | list)
        ]


def _too_deep() -> BodyRefused:
    return BodyRefused(f"arrays and objects nested more than {MAX_DEPTH} levels deep")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise BodyRefused(f"the number {text[:40]} is beyond the range of a double")
    return value


def _no_constant(name: str) -> float:
    raise BodyRefused(f"{name} is not a JSON number")


class _LimitedDecoder(json.JSONDecoder):
    """``json``'s Python scanner, counting depth and values as it goes (one per body)."""

    def __init__(self) -> None:
        super().__init__(parse_float=_finite_float, parse_constant=_no_constant)
        self.parse_object = self._object
        self.parse_array = self._array
        # The pure-Python scanner (public in json.scanner since Python 2.6, not in typeshed).
        self.scan_once = json.scanner.py_make_scanner(self)  # type: ignore[attr-defined]
        self._depth = 0
        self._values = 0

    def parse(self, raw: bytearray) -> JSON:
        text = raw.decode(json.detect_encoding(raw), "surrogatepass")
        raw.clear()
        value: JSON = self.decode(text)
        return value

    def _object(
        self,
        s_and_end: tuple[str, int],
        strict: bool,
        scan_once: Callable[[str, int], tuple[Any, int]],
        object_hook: Any,
        object_pairs_hook: Any,
        memo: dict[str, str] | None = None,
    ) -> tuple[Any, int]:
        self._nest()
        try:
            return json.decoder.JSONObject(  # type: ignore[attr-defined,no-any-return]
                s_and_end, strict, self._counted(scan_once), object_hook, object_pairs_hook, memo
            )
        finally:
            self._depth -= 1

    def _array(
        self, s_and_end: tuple[str, int], scan_once: Callable[[str, int], tuple[Any, int]]
    ) -> tuple[Any, int]:
        self._nest()
        try:
            return json.decoder.JSONArray(s_and_end, self._counted(scan_once))  # type: ignore[attr-defined,no-any-return]
        finally:
            self._depth -= 1

    def _nest(self) -> None:
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _too_deep()

    def _counted(
        self, scan_once: Callable[[str, int], tuple[Any, int]]
    ) -> Callable[[str, int], tuple[Any, int]]:
        def scan(string: str, index: int) -> tuple[Any, int]:
            self._values += 1
            if self._values > MAX_VALUES:
                raise BodyRefused(f"more than {MAX_VALUES:,} values")
            return scan_once(string, index)

        return scan
