"""Making wire text safe to show to a person: invisible and deceptive characters become escapes."""

from __future__ import annotations

import re

_HIDDEN = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f"  # control characters (Cc) but tab and line feed
    "\ud800-\udfff"  # lone surrogates: undecodable wire bytes (surrogateescape)
    "\u2028\u2029"  # line and paragraph separators
    "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"  # bidirectional marks and overrides
)


def visible(text: str) -> str:
    """``text`` with control characters, lone surrogates, line separators and bidi overrides escaped.

    Messages quote raw wire bytes: a stray ``\\r`` or NUL is often the very defect being reported,
    so it must show (``\\r``, ``\\x00``) rather than vanish or garble the page.
    """
    return _HIDDEN.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    return match[0].encode("unicode_escape", "backslashreplace").decode("ascii")
