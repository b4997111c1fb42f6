"""Preflight: one cheap request before a run, so a configuration mistake is one line and exit 2.

Without it a wrong URL, a key the target rejects or a base URL that serves a web page looks like a
gateway failing every check, after minutes of timeouts. Before the first check (conformance) or the
first locust user (load), ``preflight(target)`` sends the cheapest request the target claims
(``GET /v1/models``, else a one-token chat completion) with each configured key and raises
``PreflightError`` naming the cause:

- no key configured for a target that is not on this host;
- the target cannot be reached (connection refused, DNS, TLS, no answer in time);
- a redirect (the base URL is not the API's);
- an answer that is not JSON (an HTML page, a proxy's text);
- 401 or 403 to a configured key.

Anything else (a 5xx, a 429, a JSON 404 on ``/v1/models`` answered by the chat endpoint) is left
to the run: those are findings, not configuration mistakes.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from gatecheck.errors import GatecheckError
from gatecheck.redaction import Secret, redact

if TYPE_CHECKING:
    import httpx

    from gatecheck.client import Client, Exchange
    from gatecheck.config import Target

PREFLIGHT_TIMEOUT_S = 10.0
"""The longest a preflight request may take (connect included): a target that needs more fails it."""

_EXCERPT = 120


class PreflightError(GatecheckError):
    """The target cannot be checked at all; the message is one line naming the cause."""


def preflight(target: Target, *, transport: httpx.BaseTransport | None = None) -> str:
    """Check that ``target`` answers like an API and accepts its keys; return a one-line summary.

    The embedded reference gateway (no base URL) needs no preflight. ``transport`` is the test seam.
    """
    if target.base_url is None:
        return "embedded reference gateway: no preflight needed"
    from gatecheck.client import Client

    keys = [(1, target.api_key), (2, target.api_key_2)]
    if target.api_key is None and not is_local(target.base_url):
        raise PreflightError(
            f"no API key for {target.base_url}: set ${target.api_key_env} or pass --api-key "
            "(keys come only from the environment or the command line)"
        )
    bounded = dataclasses.replace(
        target,
        connect_timeout=min(target.connect_timeout, PREFLIGHT_TIMEOUT_S),
        read_timeout=min(target.read_timeout, PREFLIGHT_TIMEOUT_S),
        total_timeout=min(target.total_timeout, PREFLIGHT_TIMEOUT_S),
    )
    secrets = [k for _, k in keys if k is not None]
    with Client(bounded, transport=transport) as client:
        answered = ""
        for which, key in keys:
            if which == 2 and key is None:
                continue
            answered = _probe(client, target, which, key, secrets)
    return f"preflight: {target.base_url} answered {answered}"


def is_local(base_url: str) -> bool:
    """True for a URL on this host (loopback or ``localhost``), where a keyless server is plausible."""
    host = urlsplit(base_url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _probe(client: Client, target: Target, which: int, key: Secret | None, secrets: list[Secret]) -> str:
    """Send the cheap requests with key ``which`` until one settles the question; raise on a mistake."""
    last = ""
    for method, path, body in _cheap_requests(target):
        exchange = client.send(method, path, json=body, key=key)
        _raise_for(exchange, which, key, secrets)
        last = f"{exchange.status} to {method} {path}"
        if exchange.status != 404:
            return last
    return last


def _cheap_requests(target: Target) -> Iterator[tuple[str, str, object]]:
    if target.claims("models"):
        yield "GET", "/v1/models", None
    body = {
        "model": target.models.chat,
        "messages": [{"role": "user", "content": "Say OK."}],
        "max_tokens": 1,
    }
    yield "POST", "/v1/chat/completions", body


def _raise_for(exchange: Exchange, which: int, key: Secret | None, secrets: list[Secret]) -> None:
    url = exchange.request.url
    if exchange.status == 0:
        raise PreflightError(f"cannot reach {url}: {_transport_cause(exchange)}")
    if exchange.status in (401, 403):
        where = key.source if key is not None and key.source else "the configured key"
        whose = f"the key in {where}" if key is not None else "a request without a key"
        raise PreflightError(
            f"{whose} was rejected: {exchange.status} {_excerpt(exchange, secrets)}"
            + ("" if which == 1 else " (the second key, used by the rate-limit checks)")
        )
    if 300 <= exchange.status < 400:
        location = exchange.headers.get("location", "(no Location)")
        raise PreflightError(
            f"{url} redirects ({exchange.status} to {redact(location, secrets)}): "
            "--base-url must be the API's own URL (the part before /v1)"
        )
    ctype = exchange.headers.get("content-type", "")
    if exchange.body and not _is_json(exchange.body):
        raise PreflightError(
            f"{url} does not answer like an API: HTTP {exchange.status} {ctype or '(no content-type)'} "
            f"{_excerpt(exchange, secrets)} (is --base-url the API's URL?)"
        )


def _transport_cause(exchange: Exchange) -> str:
    text = exchange.error or "no response"
    lowered = text.lower()
    if "refused" in lowered:
        return "connection refused"
    if any(sign in lowered for sign in ("name or service not known", "nodename nor servname", "getaddrinfo")):
        return "the host name does not resolve (DNS)"
    if "certificate" in lowered or "ssl" in lowered or "tls" in lowered:
        return f"TLS failed ({text}); see --ca-bundle / --insecure"
    if exchange.error_kind in ("connect_timeout", "read_timeout", "total_timeout", "pool_timeout"):
        return f"no answer within {PREFLIGHT_TIMEOUT_S:g} s ({text})"
    return text


def _is_json(body: bytes) -> bool:
    import json

    try:
        json.loads(body)
    except ValueError:
        return False
    return True


def _excerpt(exchange: Exchange, secrets: list[Secret]) -> str:
    """The start of the body on one line, keys removed before it is cut."""
    text = redact(exchange.body.decode("utf-8", "replace"), secrets)
    flat = " ".join(text.split())
    return repr(flat[:_EXCERPT] + ("..." if len(flat) > _EXCERPT else ""))
