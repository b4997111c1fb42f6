"""Rate-limit header dialects, read into one shape: limit, remaining, seconds to reset.

- ``x-ratelimit`` (002 Rate Limits): ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` (and, not
  documented but common, ``X-RateLimit-Reset`` in seconds);
- ``openai``: ``x-ratelimit-limit-requests``, ``x-ratelimit-remaining-requests``,
  ``x-ratelimit-reset-requests`` as a duration such as ``1s``, ``6m0s`` or ``20ms``;
- ``anthropic``: ``anthropic-ratelimit-requests-limit``, ``-remaining``, ``-reset`` (RFC 3339);
- ``ietf`` (draft-ietf-httpapi-ratelimit-headers): ``RateLimit-Policy`` and ``RateLimit``, both in
  the dictionary form of draft 07 (``limit=10, remaining=3, reset=5``) and the list form of
  drafts 08+ (``"default";r=3;t=5`` with the policy ``"default";q=10;w=60``).
Pure functions over a case-insensitive header mapping; no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

DIALECTS: tuple[str, ...] = ("x-ratelimit", "openai", "anthropic", "ietf")


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """What one response says about the request limit; None where the header is absent or unreadable."""

    dialect: str
    limit: int | None
    remaining: int | None
    reset_s: float | None

    @property
    def complete(self) -> bool:
        """Both the limit and the remaining count are readable."""
        return self.limit is not None and self.remaining is not None


HeaderGet = Callable[[str], str | None]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def read(headers: Mapping[str, str], dialect: str, now: float | None = None) -> RateLimitInfo:
    """The request-limit information of ``headers`` in ``dialect`` ("any": the first dialect found)."""
    get: HeaderGet = headers.get  # httpx.Headers and our lower-cased dicts are case-insensitive
    if dialect == "any":
        for name in DIALECTS:
            info = read(headers, name, now)
            if info.complete:
                return info
        return RateLimitInfo("any", None, None, None)
    return _READERS[dialect](get, now)


TOKEN_LIMIT_HEADERS = ("x-ratelimit-limit-tokens", "anthropic-ratelimit-tokens-limit")
"""Where a response states its key's token limit (OpenAI's name, also sent as X-RateLimit-Limit-Tokens)."""


def token_limit(headers: Mapping[str, str]) -> int | None:
    """The token limit a response states for its key, if any (case-insensitive ``headers``)."""
    for name in TOKEN_LIMIT_HEADERS:
        value = _int(headers.get(name))
        if value is not None:
            return value
    return None


def expected_headers(dialect: str) -> str:
    """The header names a dialect requires, for messages."""
    return {
        "x-ratelimit": "X-RateLimit-Limit and X-RateLimit-Remaining",
        "openai": "x-ratelimit-limit-requests and x-ratelimit-remaining-requests",
        "anthropic": "anthropic-ratelimit-requests-limit and anthropic-ratelimit-requests-remaining",
        "ietf": "RateLimit (and RateLimit-Policy) with a limit/quota and remaining",
        "any": "one dialect of X-RateLimit-*, x-ratelimit-*-requests, anthropic-ratelimit-*, RateLimit",
    }[dialect]


def parse_duration(text: str) -> float | None:
    """An OpenAI reset duration (``6m0s``, ``1s``, ``20ms``, ``1h2m``) in seconds."""
    text = text.strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    text = value.strip()
    return int(text) if text.isdigit() else None


def _float(value: str | None) -> float | None:
    try:
        return None if value is None else float(value.strip())
    except ValueError:
        return None


def _x_ratelimit(get: HeaderGet, now: float | None) -> RateLimitInfo:
    return RateLimitInfo(
        "x-ratelimit",
        _int(get("x-ratelimit-limit")),
        _int(get("x-ratelimit-remaining")),
        _float(get("x-ratelimit-reset")),
    )


def _openai(get: HeaderGet, now: float | None) -> RateLimitInfo:
    reset = get("x-ratelimit-reset-requests")
    return RateLimitInfo(
        "openai",
        _int(get("x-ratelimit-limit-requests")),
        _int(get("x-ratelimit-remaining-requests")),
        None if reset is None else parse_duration(reset),
    )


def _anthropic(get: HeaderGet, now: float | None) -> RateLimitInfo:
    reset = get("anthropic-ratelimit-requests-reset")
    reset_s = None
    if reset is not None and now is not None:
        try:
            reset_s = max(0.0, datetime.fromisoformat(reset.strip().replace("Z", "+00:00")).timestamp() - now)
        except ValueError:
            reset_s = None
    return RateLimitInfo(
        "anthropic",
        _int(get("anthropic-ratelimit-requests-limit")),
        _int(get("anthropic-ratelimit-requests-remaining")),
        reset_s,
    )


def _ietf(get: HeaderGet, now: float | None) -> RateLimitInfo:
    fields = _params(get("ratelimit") or "")
    policy = _params(get("ratelimit-policy") or "")
    limit = (
        _int(fields.get("limit"))
        or _int(policy.get("q"))
        or _int(policy.get("limit"))
        or _int(policy.get(""))
    )
    remaining = _int(fields.get("remaining", fields.get("r")))
    return RateLimitInfo("ietf", limit, remaining, _float(fields.get("reset", fields.get("t"))))


def _params(value: str) -> dict[str, str]:
    """Parameters of the first RateLimit/RateLimit-Policy item, in either draft's syntax.

    ``limit=10, remaining=3, reset=5`` (draft 07 dictionary) and ``"default";r=3;t=5`` or
    ``10;w=60`` (list items with parameters) all become flat name -> value maps; a bare leading
    number is stored under "".
    """
    first = value.split(",")[0] if ";" in value else value
    out: dict[str, str] = {}
    for part in re.split(r"[;,]", first):
        name, sep, val = part.strip().partition("=")
        if sep:
            out[name.strip().lower()] = val.strip().strip('"')
        elif name.strip().isdigit():
            out[""] = name.strip()
    return out


_READERS: dict[str, Callable[[HeaderGet, float | None], RateLimitInfo]] = {
    "x-ratelimit": _x_ratelimit,
    "openai": _openai,
    "anthropic": _anthropic,
    "ietf": _ietf,
}
