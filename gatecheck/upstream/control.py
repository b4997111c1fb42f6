"""The checks' client of the harness's control API: register a scenario, read the log back.

Synchronous (httpx, like the checks' own client), loopback only in practice: the harness refuses
control requests from anywhere else. A harness that cannot be reached is a ``ControlError``; the
checks turn it into "not checked" with the reason.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import httpx

from gatecheck.errors import GatecheckError
from gatecheck.upstream.scenarios import new_nonce

CONTROL_TIMEOUT_S = 10.0


class ControlError(GatecheckError):
    """The harness's control API did not answer, or refused what was asked."""


class Control:
    """A client of one harness's control API; a context manager."""

    def __init__(self, url: str, *, transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url, timeout=CONTROL_TIMEOUT_S, trust_env=False, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Control:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, f"/_gatecheck/{path}", **kwargs)
        except httpx.HTTPError as exc:
            raise ControlError(
                f"the upstream harness at {self.url} did not answer ({type(exc).__name__})"
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200 or not isinstance(body, dict):
            detail = body.get("error") if isinstance(body, dict) else response.text[:200]
            raise ControlError(
                f"the harness at {self.url} answered {response.status_code} to {path}: {detail}"
            )
        return body

    def info(self) -> dict[str, Any]:
        """The harness's key (a canary), its clock and its scenarios."""
        info: dict[str, Any] = self._call("GET", "info")
        return info

    def register(self, scenario: str, **params: Any) -> str:
        """A fresh nonce scripted with ``scenario``; put it in the prompt."""
        nonce = new_nonce()
        self._call("POST", "scenarios", json={"nonce": nonce, "scenario": scenario, **params})
        return nonce

    def attempts(self, nonce: str) -> list[dict[str, Any]]:
        """Every attempt the harness received for ``nonce``, oldest first."""
        found: list[dict[str, Any]] = self._call("GET", "log", params={"nonce": nonce})["attempts"]
        return found

    def since(self, seq: int, limit: int = 10_000, prefix: str = "") -> tuple[list[dict[str, Any]], int]:
        """Attempts numbered above ``seq`` (stamps only; nonces starting with ``prefix``) and the
        number to ask from next time."""
        params: dict[str, str | int] = {"since": seq, "limit": limit}
        if prefix:
            params["prefix"] = prefix
        body = self._call("GET", "log", params=params)
        return body["attempts"], int(body["next"])
