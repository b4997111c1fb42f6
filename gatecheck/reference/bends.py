"""How the chat fault modes read a request: each bends one rule before the body is validated.

A bend returns the body as the faulty gateway would pass it on (a part dropped), or raises the
400 the faulty gateway would answer (a parameter or a message shape it does not take).
"""

from __future__ import annotations

import itertools
from collections.abc import Collection

from gatecheck._types import JSON, JSONObject
from gatecheck.reference import errors as E

TEXT_PARTS = frozenset({"text", "input_text"})


def bend_chat_request(body: JSONObject, faults: Collection[str]) -> JSONObject:
    """The Chat Completions request as the active fault modes read it."""
    if "reasoning-effort-rejected" in faults and "reasoning_effort" in body:
        message = "Unrecognized request argument supplied: reasoning_effort"
        raise E.ApiError(E.INVALID_PARAMS, message, param="reasoning_effort")
    messages = [m for m in _list(body.get("messages")) if isinstance(m, dict)]
    if "content-parts-rejected" in faults and any(isinstance(m.get("content"), list) for m in messages):
        message = "Invalid parameter 'messages[].content': must be a string"
        raise E.ApiError(E.INVALID_PARAMS, message, param="messages")
    if "tool-results-parallel-refused" in faults and any(
        a.get("role") == b.get("role") == "tool" for a, b in itertools.pairwise(messages)
    ):
        message = (
            "Invalid parameter 'messages': a tool message must follow the assistant message with its call"
        )
        raise E.ApiError(E.INVALID_PARAMS, message, param="messages")
    if "media-parts-dropped" in faults:
        return {**body, "messages": [_text_only(m) for m in _list(body.get("messages"))]}
    return body


def _text_only(message: JSON) -> JSON:
    """``message`` with every non-text content part left out (the media-parts-dropped fault)."""
    if not isinstance(message, dict) or not isinstance(message.get("content"), list):
        return message
    kept = [p for p in message["content"] if not isinstance(p, dict) or p.get("type") in TEXT_PARTS]
    return {**message, "content": kept}


def _list(value: JSON) -> list[JSON]:
    return value if isinstance(value, list) else []
