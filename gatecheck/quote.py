"""Quoting what a target sent, for people: JSON notation, keys masked before any cut.

Every failure message and protocol violation quotes wire bytes or values through these two
helpers, so a quote is always JSON (``"stop"``, ``null``, ``"data: {...}\\n\\n"``: a missing blank
line, a stray CR or a BOM stays visible; never a Python ``b'...'``, ``None`` or ``True``) and a key
is masked before the quote is cut (``gatecheck.redaction.clip``), never cut in half and left
showing. The keys are those of the runs in progress (``gatecheck.redaction.redacting``).
"""

from __future__ import annotations

import codecs
import json
import re

from gatecheck.redaction import active_secrets, clip, clip_text, reach, redact

EXCERPT_BYTES = 600
"""How much of a body or event a failure quotes by default."""

_MAX_DEPTH = 32
_INVISIBLE = re.compile("[\x7f-\x9f\xad\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff]")
"""Characters JSON leaves raw that a reader would not see (DEL, C1, zero-width, bidi, separators, BOM)."""


def excerpt(data: bytes | str, limit: int = EXCERPT_BYTES) -> str:
    """Wire bytes as a JSON string, keys masked, cut at ``limit`` bytes with a note of the total.

    Bytes that are not UTF-8 show as ``\\\\xNN``; control and invisible characters as JSON escapes.
    """
    raw = data.encode("utf-8", "replace") if isinstance(data, str) else data
    cut = len(raw) > limit
    decoder = codecs.getincrementaldecoder("utf-8")("backslashreplace")
    shown = _visible(json.dumps(decoder.decode(clip(raw, limit), final=not cut), ensure_ascii=False))
    return f"{shown}... ({len(raw)} bytes in all)" if cut else shown


def as_json(value: object, limit: int = EXCERPT_BYTES) -> str:
    """A decoded value as JSON (``null``, ``"stop"``, ``[1, 2]``), keys masked, cut at ``limit`` characters.

    Rendering stops soon after the limit, and containers below ``_MAX_DEPTH`` levels show as
    ``[...]``, so a huge or deeply nested payload costs little; a cut quote ends with ``...``.
    """
    margin = reach() + 2  # a key the rendering cut, and the quote closing its string
    room = limit + margin
    while True:
        rendering = _Rendering(room)
        rendering.add(value, 0)
        text = _visible("".join(rendering.parts))
        if not rendering.cut:
            return text if len(text) <= limit else clip_text(text, limit) + "..."
        if len(redact(text, active_secrets())) >= limit + margin:
            # Masking left the end of the rendering (where a key may be cut) past the quote's cut.
            return clip_text(text, limit) + "..."
        room *= 2


class _Rendering:
    """JSON text built until ``room`` characters are written; ``cut`` when it stopped short."""

    def __init__(self, room: int) -> None:
        self.parts: list[str] = []
        self.room = room
        self.cut = False

    def write(self, text: str) -> None:
        self.parts.append(text)
        self.room -= len(text)

    def add(self, value: object, depth: int) -> None:
        if self.room <= 0:
            self.cut = True
        elif isinstance(value, dict | list | tuple) and depth >= _MAX_DEPTH:
            self.write("{...}" if isinstance(value, dict) else "[...]")
        elif isinstance(value, dict):
            self.add_items([(str(k), v) for k, v in value.items()], "{}", depth)
        elif isinstance(value, list | tuple):
            self.add_items([(None, v) for v in value], "[]", depth)
        elif isinstance(value, bytes):
            self.add(value.decode("utf-8", "backslashreplace"), depth)
        elif isinstance(value, str):
            self.cut = self.cut or len(value) > self.room
            self.write(json.dumps(value[: self.room], ensure_ascii=False))
        else:
            self.write(json.dumps(value, default=str))

    def add_items(self, items: list[tuple[str | None, object]], brackets: str, depth: int) -> None:
        self.write(brackets[0])
        for index, (key, item) in enumerate(items):
            if self.room <= 0:
                self.cut = True
                return
            if index:
                self.write(", ")
            if key is not None:
                self.add(key, depth + 1)
                self.write(": ")
            self.add(item, depth + 1)
        self.write(brackets[1])


def _visible(text: str) -> str:
    return _INVISIBLE.sub(lambda m: f"\\u{ord(m[0]):04x}", text)
