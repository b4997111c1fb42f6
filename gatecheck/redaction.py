"""Keeping API keys out of everything gatecheck prints, logs, raises or writes.

A key lives in a ``Secret`` from the moment it is read (environment or command line) until the
HTTP client puts it in a header. ``str``, ``repr`` and ``format`` of a ``Secret`` never show any part
of it, ``json.dumps`` refuses it, and ``redact()`` scrubs text that may contain a key (exception
messages, wire excerpts, reports). ``RedactingFilter`` does the same for log records.

Redaction removes the key and only the key, so the evidence shown is still the wire: every
occurrence of a known key is replaced by ``***`` whether written plainly or escaped as a gateway
may echo it (JSON ``\\u002d`` and ``\\/`` escapes, also doubly escaped, ``\\x2d``, percent-encoding,
HTML character references), in text (``redact``) and in raw bytes (``redact_bytes``). Nothing
else is touched: no guessing at words that merely look like credentials.

Quotes are cut after redacting, never before (``clip``, ``clip_text``): a key cut in half by an
excerpt boundary can no longer be recognised. The keys to scrub come from the caller or, for the
quote helpers deep in the checks and the stream assembler, from the runs in progress
(``redacting(secrets)``).
"""

from __future__ import annotations

import functools
import hmac
import logging
import re
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import AnyStr

REDACTED = "***"
"""What a key is replaced with wherever it would otherwise appear."""
_REDACTED_BYTES = REDACTED.encode()

MIN_PARTIAL = 6
"""A cut quote ending in at least this many leading characters of a key has that ending masked too."""

_SLASHES = r"\\\\{0,7}"
"""The backslashes before an escape: one, or more when an escaped string was escaped again.

Written as a literal backslash first: a pattern whose every alternative starts with a literal lets
``re`` skip ahead to the candidate characters, several times faster on long text."""
_HTML_NAMED = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"}


class Secret:
    """A key that only ``reveal()`` shows; equal to another ``Secret`` with the same value.

    ``Secret`` is deliberately not a ``str`` subclass, so ``json.dumps`` raises ``TypeError`` on it
    instead of writing the key, and string operations cannot leak it by accident.
    """

    __slots__ = ("_source", "_value")

    def __init__(self, value: str, source: str = "") -> None:
        if not isinstance(value, str):
            raise TypeError(f"Secret wraps a str, not {type(value).__name__}")
        self._value = value
        self._source = source

    @property
    def source(self) -> str:
        """Where the key came from (``$GATECHECK_API_KEY``, ``--api-key``), for messages; may be empty."""
        return self._source

    def reveal(self) -> str:
        """The key itself: call this only where it goes on the wire."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, format_spec: str) -> str:
        return format(REDACTED, format_spec)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Secret:
        # Immutable: dataclasses.asdict(target) deep-copies fields and must not fall back to pickling.
        return self

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret cannot be pickled (it would write the key)")


def as_secret(value: Secret | str) -> Secret:
    """Wrap a plain key; a ``Secret`` is returned as is."""
    return value if isinstance(value, Secret) else Secret(value)


# ---------------------------------------------------------------- the keys of the runs in progress

_active: Counter[Secret] = Counter()
_active_lock = threading.Lock()


@contextmanager
def redacting(secrets: Iterable[Secret | str]) -> Iterator[None]:
    """Within the block, ``clip``/``clip_text`` without explicit secrets also scrub ``secrets``.

    Process-wide (not per thread): a check's worker threads quote wire bytes too. Nested or
    concurrent runs add up; scrubbing another run's key as well costs nothing.
    """
    added = [as_secret(s) for s in secrets if s]
    with _active_lock:
        _active.update(added)
    try:
        yield
    finally:
        with _active_lock:
            _active.subtract(added)
            for secret in [s for s, count in _active.items() if count <= 0]:
                del _active[secret]


def active_secrets() -> tuple[Secret, ...]:
    """The keys of every ``redacting`` block in progress."""
    with _active_lock:
        return tuple(_active)


# ---------------------------------------------------------------- patterns


def _hex(value: int, width: int = 1) -> str:
    """``value`` in hex (at least ``width`` digits) as a regex, letters in either case."""
    return "".join(f"[{d}{d.upper()}]" if d.isalpha() else d for d in f"{value:0{width}x}")


def _char_forms(char: str) -> tuple[str, int]:
    """A regex for one character of a key, literal or escaped (JSON/JS, percent, HTML); its longest match."""
    code = ord(char)
    utf8 = char.encode("utf-8")
    forms = [re.escape(char)]
    if code > 0xFFFF:  # JSON writes it as a surrogate pair
        high, low = 0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF)
        forms.append(f"{_SLASHES}u{_hex(high, 4)}{_SLASHES}u{_hex(low, 4)}")
    else:
        forms.append(f"{_SLASHES}u{_hex(code, 4)}")
    if code < 0x100:
        forms.append(f"{_SLASHES}x{_hex(code, 2)}")
    if char in "\"/\\'":
        forms.append(_SLASHES + re.escape(char))
    forms.append("".join(f"%(?:25){{0,2}}{_hex(byte, 2)}" for byte in utf8))
    forms.append(f"&#0{{0,4}}{code};")
    forms.append(f"&#[xX]0{{0,4}}{_hex(code)};")
    if char in _HTML_NAMED:
        forms.append(_HTML_NAMED[char])
    escape = 2 * (8 + 5) if code > 0xFFFF else 8 + 5  # up to 8 backslashes, "u", 4 hex digits
    longest = max(len(utf8), escape, 7 * len(utf8), 7 + len(f"{code}"), 8 + len(f"{code:x}"))
    return "(?:" + "|".join(forms) + ")", longest


@dataclass(frozen=True)
class _KeyPattern:
    """One key's compiled patterns, in text and in bytes."""

    key: str
    key_bytes: bytes
    whole: re.Pattern[str]
    whole_bytes: re.Pattern[bytes]
    partial: re.Pattern[str] | None
    """The key's first ``MIN_PARTIAL`` or more characters at the end of the text (None: key too short)."""
    partial_bytes: re.Pattern[bytes] | None
    reach: int
    """The most characters (or bytes) the key can occupy in any of its forms."""


@functools.lru_cache(maxsize=64)
def _key_pattern(key: str) -> _KeyPattern:
    forms = [_char_forms(c) for c in key]
    whole = "".join(form for form, _ in forms)
    partial = None
    if len(key) > MIN_PARTIAL:
        tail = ""
        for form, _ in reversed(forms[MIN_PARTIAL:]):
            tail = f"(?:{form}{tail})?"
        partial = "".join(form for form, _ in forms[:MIN_PARTIAL]) + tail + r"\Z"
    return _KeyPattern(
        key=key,
        key_bytes=key.encode("utf-8"),
        whole=re.compile(whole),
        whole_bytes=re.compile(whole.encode("utf-8")),
        partial=None if partial is None else re.compile(partial),
        partial_bytes=None if partial is None else re.compile(partial.encode("utf-8")),
        reach=sum(longest for _, longest in forms),
    )


@dataclass(frozen=True)
class _Scrubber:
    """The patterns of a set of keys, longest key first (so a key containing another goes whole)."""

    keys: tuple[_KeyPattern, ...]
    reach: int
    """The most characters (or bytes) any of the keys can occupy."""

    def sub(self, text: AnyStr) -> AnyStr:
        """``text`` with every key masked; a plain search when no escape can be in it (the usual case)."""
        escaped = _may_escape(text)
        for key in self.keys:
            if isinstance(text, bytes):
                if escaped:
                    text = key.whole_bytes.sub(_REDACTED_BYTES, text)
                elif key.key_bytes in text:
                    text = text.replace(key.key_bytes, _REDACTED_BYTES)
            elif escaped:
                text = key.whole.sub(REDACTED, text)
            elif key.key in text:
                text = text.replace(key.key, REDACTED)
        return text

    def mask_tail(self, cut: AnyStr) -> AnyStr:
        """``cut`` with an ending that starts a key (``MIN_PARTIAL`` characters or more) masked."""
        escaped = _may_escape(cut)
        starts = []
        for key in self.keys:
            if isinstance(cut, bytes):
                found = _partial_start(cut, key.key_bytes, key.partial_bytes if escaped else None, key.reach)
            else:
                found = _partial_start(cut, key.key, key.partial if escaped else None, key.reach)
            if found is not None:
                starts.append(found)
        if not starts:
            return cut
        return cut[: min(starts)] + (_REDACTED_BYTES if isinstance(cut, bytes) else REDACTED)


def _may_escape(text: str | bytes) -> bool:
    """Whether ``text`` holds a character every escaped form of a key starts with."""
    if isinstance(text, bytes):
        return b"\\" in text or b"%" in text or b"&" in text
    return "\\" in text or "%" in text or "&" in text


def _partial_start(text: AnyStr, key: AnyStr, pattern: re.Pattern[AnyStr] | None, reach: int) -> int | None:
    """Where an ending of ``text`` that starts ``key`` begins (regex ``pattern`` when escapes may hide it)."""
    if pattern is not None:
        match = pattern.search(text, max(0, len(text) - reach))
        return None if match is None else match.start()
    head = key[:MIN_PARTIAL]
    start = text.find(head, max(0, len(text) - len(key) + 1))
    while start != -1:
        if key.startswith(text[start:]):
            return start
        start = text.find(head, start + 1)
    return None


def _scrubber_for(secrets: Iterable[Secret | str] | None) -> _Scrubber | None:
    """The scrubber of ``secrets`` (None: the active ones); None when there is no key to scrub."""
    chosen = active_secrets() if secrets is None else secrets
    return _scrubber(frozenset(s.reveal() if isinstance(s, Secret) else s for s in chosen))


@functools.lru_cache(maxsize=64)
def _scrubber(values: frozenset[str]) -> _Scrubber | None:
    ordered = sorted((v for v in values if v), key=lambda v: (-len(v), v))
    keys = tuple(_key_pattern(v) for v in ordered)
    return _Scrubber(keys, max(k.reach for k in keys)) if keys else None


# ---------------------------------------------------------------- public helpers


def redact(text: str, secrets: Iterable[Secret | str]) -> str:
    """``text`` with every occurrence of every secret, plain or escaped, replaced by ``***``."""
    scrubber = _scrubber_for(secrets)
    return text if scrubber is None else scrubber.sub(text)


def redact_bytes(data: bytes, secrets: Iterable[Secret | str]) -> bytes:
    """``data`` with every occurrence of every secret, plain or escaped, replaced by ``b"***"``."""
    scrubber = _scrubber_for(secrets)
    return data if scrubber is None else scrubber.sub(data)


def clip(data: bytes, limit: int, secrets: Iterable[Secret | str] | None = None) -> bytes:
    """At most ``limit`` bytes of ``data``, keys masked BEFORE the cut (None: the active keys).

    A key the cut would split is masked whole; an ending that starts like a key is masked too.
    Only the start of ``data`` (``limit`` plus one key's reach) is scanned unless a key was found
    there, so quoting a huge event stays cheap.
    """
    return _clip(data, limit, secrets)


def clip_text(text: str, limit: int, secrets: Iterable[Secret | str] | None = None) -> str:
    """At most ``limit`` characters of ``text``, keys masked before the cut, as ``clip`` does for bytes."""
    return _clip(text, limit, secrets)


def reach(secrets: Iterable[Secret | str] | None = None) -> int:
    """How far past a cut a key that starts before it can extend, in any form (0 without keys).

    Text rendered for ``clip_text`` needs this much beyond ``limit`` for the cut to be safe.
    """
    scrubber = _scrubber_for(secrets)
    return 0 if scrubber is None else scrubber.reach


def _clip(data: AnyStr, limit: int, secrets: Iterable[Secret | str] | None) -> AnyStr:
    scrubber = _scrubber_for(secrets)
    if scrubber is None:
        return data[:limit]
    window = data[: limit + scrubber.reach]
    shown = scrubber.sub(window)
    if len(window) < len(data) and len(shown) < len(window):
        shown = scrubber.sub(data)  # a key was masked: the cut may now fall past the window
    if len(shown) <= limit:
        return shown
    return scrubber.mask_tail(shown[:limit])


class RedactingFilter(logging.Filter):
    """A logging filter that scrubs known keys from a record's message, traceback and stack.

    Attach it to a *handler* (``handler.addFilter(...)``): filters on a logger do not see records
    propagated from child loggers such as ``httpcore.http11``. The record is rendered once here, so
    a key passed as a ``%s`` argument is scrubbed too.
    """

    def __init__(self, secrets: Iterable[Secret | str] = ()) -> None:
        super().__init__()
        self._secrets: list[Secret] = [as_secret(s) for s in secrets]
        self._formatter = logging.Formatter()

    def add(self, secret: Secret | str) -> None:
        """Scrub one more key from now on (keys can be loaded after logging is set up)."""
        self._secrets.append(as_secret(secret))

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage(), self._secrets)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self._secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self._secrets)
        return True
