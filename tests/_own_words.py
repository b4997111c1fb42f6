"""A hand-made chat server whose model never counts and writes its own text (an httpx MockTransport handler).

Nothing like the reference gateway's fake model: it ignores what the prompt asks, writes the same
paragraph of its own, counts about four characters per token, and honours ``max_tokens``, ``stop``
and ``response_format`` on that text. Each switch reproduces one behaviour a real target may have.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from typing import Any

import httpx

PARAGRAPH = (
    "Numbers make a lovely topic. Here is my own take instead of a list: start somewhere small, "
    "keep going while it feels useful, and stop once the idea is clear to everyone reading along."
)
CHARS_PER_TOKEN = 4
NUMBERS = " ".join(str(i) for i in range(1, 21))


def tokens(text: str) -> int:
    """This model's own token count: about four characters per token."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@dataclass
class OwnWords:
    """The server; every switch off is a correct target whose model ignores the prompt's wishes."""

    verbose: bool = False
    """Three paragraphs: longer than any cap the checks ask for."""
    short: bool = False
    """Two words, whatever is asked."""
    silent: bool = False
    """An empty answer."""
    counts: bool = False
    """Answers 1 to 20 (an obedient model, like the reference's)."""
    long_json: bool = False
    """JSON mode writes an object longer than a 64-token cap."""
    nondeterministic: bool = False
    """Every answer starts with a different word, temperature 0 or not."""
    ignore_stop: bool = False
    ignore_max_tokens: bool = False
    ignore_response_format: bool = False
    stop_says_length: bool = False
    """Stops at a stop sequence but says finish_reason length."""
    capped_says_stop: bool = False
    """Cut at max_tokens but says finish_reason stop."""
    thinks: int = 0
    """Reasoning tokens spent first when the request carries reasoning_effort (within the cap)."""
    reasoning_outside_cap: bool = False
    """The cap limits the answer only: reasoning comes on top."""
    usage_without_reasoning: bool = False
    """completion_tokens leave the reasoning tokens out (reasoning_tokens still reported)."""
    refuses_effort: tuple[str, ...] = ()
    """reasoning_effort values answered 400."""
    cached: int | None = None
    """prompt_tokens_details.cached_tokens to report (None: no details)."""
    bodies: list[dict[str, Any]] = field(default_factory=list)
    _calls: itertools.count[int] = field(default_factory=itertools.count)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        effort = body.get("reasoning_effort")
        if effort in self.refuses_effort:
            error = {"code": "INVALID_PARAMS", "message": f"reasoning_effort {effort} is not supported"}
            return httpx.Response(400, json={"error": {**error, "request_id": "req-own"}})
        text = self._text(body)
        stops = body.get("stop") or []
        finish = "stop"
        if not self.ignore_stop:
            found = [text.find(s) for s in stops if s in text]
            if found:
                text = text[: min(found)]
                finish = "length" if self.stop_says_length else "stop"
        cap = body.get("max_tokens") or body.get("max_completion_tokens")
        thought = "Hmm " * self.thinks if effort else ""
        if isinstance(cap, int) and not self.reasoning_outside_cap:
            thought = thought[: cap * CHARS_PER_TOKEN]
            cap -= tokens(thought)
        if isinstance(cap, int) and not self.ignore_max_tokens and tokens(text) > cap:
            text = text[: cap * CHARS_PER_TOKEN]
            finish = "stop" if self.capped_says_stop else "length"
        return httpx.Response(200, json=self._completion(body, text, finish, thought))

    def _text(self, body: dict[str, Any]) -> str:
        if self.silent:
            return ""
        fmt = (body.get("response_format") or {}).get("type")
        if fmt in ("json_object", "json_schema") and not self.ignore_response_format:
            return self._json(fmt)
        if self.short:
            text = "Fine thanks."
        elif self.counts:
            text = NUMBERS
        else:
            text = " ".join([PARAGRAPH] * (3 if self.verbose else 1))
        return f"Take {next(self._calls)}: {text}" if self.nondeterministic else text

    def _json(self, fmt: str) -> str:
        if fmt == "json_schema":
            return json.dumps({"name": "Ana", "age": 31, "city": "Lima"})
        words = PARAGRAPH.split()
        description = " ".join(words * (4 if self.long_json else 1))
        return json.dumps({"name": "blue", "description": description})

    def _completion(self, body: dict[str, Any], text: str, finish: str, thought: str = "") -> dict[str, Any]:
        prompt = sum(tokens(str(m.get("content") or "")) for m in body.get("messages", []))
        done = tokens(text) + (0 if self.usage_without_reasoning else tokens(thought))
        usage: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": done,
            "total_tokens": prompt + done,
        }
        if thought:
            usage["completion_tokens_details"] = {"reasoning_tokens": tokens(thought)}
        if self.cached is not None:
            usage["prompt_tokens_details"] = {"cached_tokens": self.cached}
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if thought:
            message["reasoning_content"] = thought
        return {
            "id": "chatcmpl-own-1",
            "object": "chat.completion",
            "created": 1_712_345_678,
            "model": body.get("model", "m"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage,
        }
