"""How gatecheck reaches a target: TLS trust, proxies, and bounds that hold in every phase of a request.

Shared by the conformance client and the load side, so both trust the same certificates and go
through the same proxy:

- ``ssl_context(target)``: ``--ca-bundle`` (a PEM file or directory), else ``$SSL_CERT_FILE`` /
  ``$SSL_CERT_DIR``, else certifi's bundle (what httpx trusts by default); ``--insecure`` turns
  verification off.
- ``proxy_for(url)``: the proxy the standard variables give for ``url`` (``https_proxy``,
  ``http_proxy``, ``all_proxy``, either case, and ``no_proxy``), or None.
- ``BoundedBackend``: an httpcore network backend whose every connect, read and write is bounded
  by the calling thread's ``bounds()``: the exchange's total deadline (so a target trickling its
  response headers one byte a second still ends at ``--total-timeout``) and, once a response is
  known to be a stream, the stall bound (no byte for ``--stall-seconds``). httpcore's sync pool
  does its I/O in the caller's thread, so a thread-local is exactly "this request".
"""

from __future__ import annotations

import os
import ssl
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias
from urllib.parse import urlsplit

import httpcore

if TYPE_CHECKING:
    import httpx

    from gatecheck.config import Target

Binding: TypeAlias = Literal["", "read", "total", "stall"]


def ssl_context(target: Target) -> ssl.SSLContext:
    """The TLS context for ``target``: its CA bundle, the environment's or certifi's; none if --insecure."""
    if target.insecure:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    bundle = target.ca_bundle or os.environ.get("SSL_CERT_FILE") or os.environ.get("SSL_CERT_DIR")
    if bundle:
        if Path(bundle).is_dir():
            return ssl.create_default_context(capath=bundle)
        return ssl.create_default_context(cafile=bundle)
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def proxy_for(url: str, env: Mapping[str, str] | None = None) -> str | None:
    """The proxy URL the standard variables give for ``url`` (``no_proxy`` respected), or None."""
    environ = os.environ if env is None else env
    proxies = _environment_proxies(environ)
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not proxies or _bypassed(host, parts.port, proxies.get("no", "")):
        return None
    return proxies.get(parts.scheme) or proxies.get("all") or None


def _environment_proxies(environ: Mapping[str, str]) -> dict[str, str]:
    """``{scheme: proxy}`` from ``<scheme>_proxy`` variables; lower case wins, as in curl."""
    found: dict[str, str] = {}
    for name in sorted(environ, key=lambda n: n.islower()):  # upper case first, lower case overrides
        if name.lower().endswith("_proxy") and environ[name]:
            found[name.lower().removesuffix("_proxy")] = environ[name]
    return found


def _bypassed(host: str, port: int | None, no_proxy: str) -> bool:
    """Whether ``no_proxy`` exempts ``host``: ``*``, or an entry naming the host, a parent domain
    (``example.com`` and ``.example.com`` both cover ``gw.example.com``) or ``host:port``."""
    host = host.lower().strip("[]")
    for entry in (e.strip().lower() for e in no_proxy.split(",") if e.strip()):
        if entry == "*":
            return True
        name, _, entry_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if entry_port and entry_port != str(port):
            continue
        name = name.strip("[]").lstrip(".")
        if host == name or host.endswith("." + name):
            return True
    return False


# ---------------------------------------------------------------- bounds on every socket operation


class _Bounds(threading.local):
    """The current thread's request bounds: the total deadline, the stall bound, what bound last."""

    def __init__(self) -> None:
        self.deadline: float | None = None
        self.stall_s: float | None = None
        self.binding: Binding = ""


_BOUNDS = _Bounds()


@contextmanager
def bounds(deadline: float) -> Iterator[_Bounds]:
    """Bound every socket operation of this thread by ``deadline`` (``time.monotonic()``) until exit.

    Set ``.stall_s`` on the yielded object once the response is a stream; ``.binding`` says which
    bound a timed-out operation hit: ``"total"``, ``"stall"`` or ``"read"`` (the caller's own).
    """
    _BOUNDS.deadline, _BOUNDS.stall_s, _BOUNDS.binding = deadline, None, ""
    try:
        yield _BOUNDS
    finally:
        _BOUNDS.deadline, _BOUNDS.stall_s = None, None


def _bounded(timeout: float | None, exc: type[Exception], *, reading: bool = False) -> float | None:
    """``timeout`` lowered to the thread's bounds; raises ``exc`` when the deadline has passed."""
    deadline = _BOUNDS.deadline
    if deadline is None:
        return timeout
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        _BOUNDS.binding = "total"
        raise exc("total timeout")
    candidates: list[tuple[float, Binding]] = [(remaining, "total")]
    if timeout is not None:
        candidates.append((timeout, "read"))
    if reading and _BOUNDS.stall_s is not None:
        candidates.append((_BOUNDS.stall_s, "stall"))
    bound, _BOUNDS.binding = min(candidates, key=lambda c: c[0])
    return bound


class _BoundedStream(httpcore.NetworkStream):
    """A network stream whose every operation respects the calling thread's bounds."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout, reading=True))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        tls = self._inner.start_tls(ssl_context, server_hostname, _bounded(timeout, httpcore.ConnectTimeout))
        return _BoundedStream(tls)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class BoundedBackend(httpcore.NetworkBackend):
    """httpcore's sync backend with every stream it opens bounded by the thread's ``bounds()``."""

    def __init__(self, inner: httpcore.NetworkBackend | None = None) -> None:
        self._inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        bound = _bounded(timeout, httpcore.ConnectTimeout)
        return _BoundedStream(self._inner.connect_tcp(host, port, bound, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        bound = _bounded(timeout, httpcore.ConnectTimeout)
        return _BoundedStream(self._inner.connect_unix_socket(path, bound, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def bounded_transport(target: Target) -> httpx.HTTPTransport:
    """An httpx transport for ``target``: its TLS context, its proxy, every socket operation bounded.

    httpx offers no public way to choose the network backend, so it is set on the transport's
    connection pool (``_pool._network_backend``, httpcore 1.x); ``tests/test_client.py`` proves the
    bounds hold, so an httpx upgrade that moves it fails there, not silently.
    """
    import httpx

    transport = httpx.HTTPTransport(
        verify=ssl_context(target), proxy=proxy_for(target.base_url or ""), trust_env=False
    )
    pool = getattr(transport, "_pool", None)
    if pool is None or not hasattr(pool, "_network_backend"):
        raise RuntimeError(
            "this httpx/httpcore version keeps its network backend elsewhere: cannot bound requests"
        )
    pool._network_backend = BoundedBackend(pool._network_backend)
    return transport
