"""Render a ``Request`` as a curl command a person can paste to reproduce a failure.

Every word is shell-quoted (``shlex.quote``), so the command survives any header or body. The key
never appears: the header that carries it reads the environment instead, in double quotes so the
shell expands it (``-H "Authorization: Bearer $GATECHECK_API_KEY"``); any other known key left in
the request is shown as ``***``. The body is exact (a repro must be), except that a body over
``max_body`` bytes, or one that is not UTF-8 text, is read from a file instead (``--data-binary
@request-body-<digest>.json``): ``body_file(request, max_body)`` gives that file's name and bytes,
and the report writers save it next to the reports.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from typing import TYPE_CHECKING

from gatecheck.config import DEFAULT_KEY_ENV
from gatecheck.redaction import redact, redact_bytes

if TYPE_CHECKING:
    from gatecheck.request import Request

BODY_FILE_PREFIX = "request-body-"
"""Bodies left out of a command are saved as ``request-body-<first 16 hex digits of SHA-256>.json``."""

_PLAIN_IN_DOUBLE_QUOTES = re.compile(r'[^"\\$`!]*')
_NAME_CHAR = re.compile(r"[A-Za-z0-9_]")


def to_curl(request: Request, key_env: str | None = None, *, max_body: int | None = None) -> str:
    """The curl command for ``request``; ``key_env`` names the key's variable (default: the request's).

    ``-N`` (no buffering) is added when the JSON body asks for a stream. A body over ``max_body``
    bytes or not UTF-8 is replaced by ``--data-binary @<file>`` after a ``#`` note line naming the
    file (see ``body_file``).
    """
    env = key_env or request.key_env or DEFAULT_KEY_ENV
    words = ["curl"]
    if _asks_for_stream(request.body):
        words.append("-N")
    words += ["-X", shlex.quote(request.method), shlex.quote(redact(request.url, request.secrets))]
    for name, value in request.headers.items():
        words += ["-H", _header_word(f"{name}: {value}", request, env)]
    note = ""
    if request.body:
        body_words, note = _body_words(request, max_body)
        words += body_words
    command = " ".join(words)
    return f"{note}\n{command}" if note else command


def _asks_for_stream(body: bytes) -> bool:
    """Whether the body is a JSON object with ``"stream": true``."""
    try:
        decoded = json.loads(body) if body else None
    except ValueError:
        return False
    return isinstance(decoded, dict) and decoded.get("stream") is True


def _env_reference(env: str, following: str) -> str:
    """``$NAME``, or ``${NAME}`` when the next character would otherwise extend the name."""
    return f"${{{env}}}" if _NAME_CHAR.match(following[:1]) else f"${env}"


def _header_word(text: str, request: Request, env: str) -> str:
    """One quoted ``-H`` argument, the request's key replaced by a reference to ``env``."""
    key = request.key.reveal() if request.key is not None else ""
    if not key or key not in text:
        return shlex.quote(redact(text, request.secrets))
    pieces = [redact(piece, request.secrets) for piece in text.split(key)]
    if all(_PLAIN_IN_DOUBLE_QUOTES.fullmatch(piece) for piece in pieces):
        inner = pieces[0] + "".join(_env_reference(env, piece) + piece for piece in pieces[1:])
        return f'"{inner}"'
    # Characters that are special inside double quotes: single-quote the text, double-quote the reference.
    return f'"${{{env}}}"'.join(shlex.quote(piece) if piece else "" for piece in pieces)


def body_file(request: Request, max_body: int | None = None) -> tuple[str, bytes] | None:
    """The file a curl of ``request`` reads its body from (name, bytes), or None when it is inlined.

    The bytes are the body with every known key masked; the name is derived from them, so the same
    body is one file however many failures quote it.
    """
    if not request.body:
        return None
    if (max_body is not None and len(request.body) > max_body) or not _is_utf8(request.body):
        content = redact_bytes(request.body, request.secrets)
        suffix = ".json" if _is_utf8(content) else ".bin"
        return f"{BODY_FILE_PREFIX}{hashlib.sha256(content).hexdigest()[:16]}{suffix}", content
    return None


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _body_words(request: Request, max_body: int | None) -> tuple[list[str], str]:
    """The body's curl words and a note line (empty unless the body is read from a file)."""
    saved = body_file(request, max_body)
    if saved is None:
        return ["--data-raw", shlex.quote(redact(request.body.decode("utf-8"), request.secrets))], ""
    name, _ = saved
    why = "not UTF-8 text" if not _is_utf8(request.body) else f"{len(request.body)} bytes"
    note = f"# the request body ({why}) is in {name} next to this report: run this from that directory"
    return ["--data-binary", shlex.quote(f"@{name}")], note
