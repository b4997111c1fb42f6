"""What a load test sends and when: length distributions, prompts, datasets, request bodies,
open-model arrival schedules and ramp plans.

Pure and seeded, so the users in ``gatecheck.load.users`` stay I/O only and every rule here is
unit-tested without locust. A prompt of N "tokens" is N words: exact against the reference
gateway (one word = one token) and about 1.3 tokens per word on real tokenizers, which is why the
measured token counts always come from the response's ``usage`` when it has one.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeAlias

from gatecheck._types import JSONObject
from gatecheck.errors import ConfigError

Dialect: TypeAlias = Literal["openai", "anthropic"]
DIALECTS: tuple[Dialect, ...] = ("openai", "anthropic")
DistKind: TypeAlias = Literal["fixed", "normal", "uniform"]
Arrival: TypeAlias = Literal["constant", "poisson"]
ARRIVALS: tuple[Arrival, ...] = ("constant", "poisson")
ANTHROPIC_VERSION = "2023-06-01"

_LENGTH_HELP = "N, MEAN:SPREAD (normal, SPREAD = standard deviation) or uniform:MEAN:SPREAD (MEAN +- SPREAD)"
_MAX_LENGTH = 2_000_000
_MAX_DATASET_BYTES = 256 * 1024 * 1024
_INSTRUCTION = "Write a long, detailed essay that uses each of these words:"
_WORDS = (
    "river",
    "signal",
    "lantern",
    "harbor",
    "meadow",
    "copper",
    "orbit",
    "canyon",
    "velvet",
    "summit",
    "pepper",
    "quartz",
    "falcon",
    "garden",
    "island",
    "jigsaw",
    "kettle",
    "marble",
    "nectar",
    "pillow",
    "rocket",
    "saddle",
    "timber",
    "walnut",
    "yonder",
    "zephyr",
    "anchor",
    "bridge",
    "candle",
    "dragon",
)


@dataclass(frozen=True, slots=True)
class LengthDist:
    """A token length: fixed, normal (mean, standard deviation) or uniform (mean +- spread)."""

    kind: DistKind
    mean: int
    spread: int = 0

    def sample(self, rng: random.Random) -> int:
        """One length, at least 1 (normal draws are clipped to mean +- 4 spreads)."""
        if self.kind == "fixed" or self.spread == 0:
            return self.mean
        if self.kind == "uniform":
            return max(1, rng.randint(self.mean - self.spread, self.mean + self.spread))
        value = rng.gauss(self.mean, self.spread)
        low, high = self.mean - 4 * self.spread, self.mean + 4 * self.spread
        return max(1, round(min(max(value, low), high)))

    def __str__(self) -> str:
        if self.kind == "fixed":
            return str(self.mean)
        return f"{self.mean}:{self.spread}" if self.kind == "normal" else f"uniform:{self.mean}:{self.spread}"


def _length_int(text: str, option: str, spec: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(option, spec, _LENGTH_HELP) from None
    if not 0 <= value <= _MAX_LENGTH:
        raise ConfigError(option, spec, f"{_LENGTH_HELP}, numbers from 0 to {_MAX_LENGTH}")
    return value


def parse_length(spec: str, option: str = "--output-tokens") -> LengthDist:
    """``"128"``, ``"128:16"`` (normal) or ``"uniform:128:16"``; a ConfigError names ``option``."""
    parts = str(spec).strip().split(":")
    kind: DistKind = "normal"
    if parts[0] in ("normal", "uniform"):
        kind = "uniform" if parts[0] == "uniform" else "normal"
        parts = parts[1:]
        if len(parts) != 2:
            raise ConfigError(option, spec, _LENGTH_HELP)
    if len(parts) == 1:
        mean = _length_int(parts[0], option, spec)
        if mean < 1:
            raise ConfigError(option, spec, f"{_LENGTH_HELP}, a mean of at least 1")
        return LengthDist("fixed", mean)
    if len(parts) != 2:
        raise ConfigError(option, spec, _LENGTH_HELP)
    mean, spread = _length_int(parts[0], option, spec), _length_int(parts[1], option, spec)
    if mean < 1 or (kind == "uniform" and spread >= mean):
        raise ConfigError(option, spec, f"{_LENGTH_HELP}, a mean of at least 1 (uniform: spread < mean)")
    return LengthDist(kind, mean, spread)


def prompt_text(words: int, rng: random.Random) -> str:
    """A user prompt of exactly ``words`` whitespace-separated words asking for a long answer."""
    head = _INSTRUCTION.split()
    if words <= len(head):
        return " ".join(head[:words])
    return " ".join([*head, *rng.choices(_WORDS, k=words - len(head))])


Messages: TypeAlias = list[JSONObject]


def _dataset_line(line: str, number: int, path: Path) -> Messages:
    where = f"--dataset {path} line {number}"
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ConfigError(where, line[:80], f"one JSON value per line ({exc.msg})") from None
    messages = value.get("messages") if isinstance(value, dict) else value
    if not isinstance(messages, list) or not messages:
        raise ConfigError(where, line[:80], 'a non-empty list of messages, or {"messages": [...]}')
    for message in messages:
        if not (isinstance(message, dict) and isinstance(message.get("role"), str) and "content" in message):
            raise ConfigError(where, line[:80], 'messages like {"role": "user", "content": "..."}')
    return messages


def load_dataset(path: Path) -> list[Messages]:
    """Conversations from a JSONL file: each line a list of messages or ``{"messages": [...]}``."""
    try:
        if path.stat().st_size > _MAX_DATASET_BYTES:
            raise ConfigError("--dataset", str(path), f"a file under {_MAX_DATASET_BYTES // 2**20} MiB")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("--dataset", str(path), f"a readable UTF-8 JSONL file ({exc})") from None
    rows = [_dataset_line(line, n, path) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not rows:
        raise ConfigError("--dataset", str(path), "a file with at least one conversation")
    return rows


def chat_body(
    model: str, messages: Messages, max_tokens: int, *, stream: bool, include_usage: bool
) -> JSONObject:
    """An OpenAI chat completion request; streaming ones ask for usage in the last chunk."""
    body: JSONObject = {"model": model, "messages": messages, "max_tokens": max_tokens, "stream": stream}
    if stream and include_usage:
        body["stream_options"] = {"include_usage": True}
    return body


def _text_of(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content)


def messages_body(model: str, messages: Messages, max_tokens: int, *, stream: bool) -> JSONObject:
    """An Anthropic ``/v1/messages`` request; system messages move to the ``system`` field."""
    system = [_text_of(m.get("content")) for m in messages if m.get("role") == "system"]
    turns = [m for m in messages if m.get("role") != "system"]
    body: JSONObject = {"model": model, "max_tokens": max_tokens, "messages": turns, "stream": stream}
    if system:
        body["system"] = "\n".join(system)
    return body


def with_nonce(body: JSONObject, nonce: str) -> JSONObject:
    """``body`` with ``nonce`` appended to its last message's text, where the upstream harness finds it
    (prompts cross gateways unchanged); nothing is changed in place (dataset rows are shared)."""
    messages = list(body["messages"])
    last = dict(messages[-1])
    content = last.get("content")
    if isinstance(content, list):
        last["content"] = [*content, {"type": "text", "text": nonce}]
    else:
        last["content"] = f"{content} {nonce}" if content else nonce
    messages[-1] = last
    return {**body, "messages": messages}


def request_path(dialect: Dialect) -> str:
    """The endpoint a dialect posts to."""
    return "/v1/messages" if dialect == "anthropic" else "/v1/chat/completions"


def auth_headers(key: str, auth: str, dialect: Dialect) -> dict[str, str]:
    """Headers that carry the key the target's way (plus Anthropic's version header)."""
    headers = {"x-api-key": key} if auth == "x-api-key" else {"Authorization": f"Bearer {key}"}
    if dialect == "anthropic":
        headers["anthropic-version"] = ANTHROPIC_VERSION
    return headers


@dataclass(slots=True)
class RequestFactory:
    """Builds the bodies of one user's requests: seeded, so a run is repeatable."""

    model: str
    dialect: Dialect
    stream: bool
    prompt_tokens: LengthDist
    output_tokens: LengthDist
    include_usage: bool = True
    ignore_eos: bool = False
    dataset: Sequence[Messages] = ()
    rng: random.Random = field(default_factory=random.Random)
    max_output_tokens: int | None = None
    """``--max-output-tokens``: sampled lengths above it are clipped to it."""

    def messages(self) -> Messages:
        """The next conversation: a dataset row, or a generated prompt of the chosen length."""
        if self.dataset:
            return self.dataset[self.rng.randrange(len(self.dataset))]
        return [{"role": "user", "content": prompt_text(self.prompt_tokens.sample(self.rng), self.rng)}]

    def probe_body(self, words: int, max_tokens: int) -> JSONObject:
        """A non-streaming request of a planned size (the rate-limit probes)."""
        messages = [{"role": "user", "content": prompt_text(words, self.rng)}]
        if self.dialect == "anthropic":
            return messages_body(self.model, messages, max_tokens, stream=False)
        return chat_body(self.model, messages, max_tokens, stream=False, include_usage=False)

    def body(self, max_tokens: int | None = None) -> JSONObject:
        """The next request body (``max_tokens`` overrides the sampled output length)."""
        limit = self.output_tokens.sample(self.rng) if max_tokens is None else max_tokens
        if self.max_output_tokens is not None:
            limit = min(limit, self.max_output_tokens)
        if self.dialect == "anthropic":
            body = messages_body(self.model, self.messages(), limit, stream=self.stream)
        else:
            body = chat_body(
                self.model, self.messages(), limit, stream=self.stream, include_usage=self.include_usage
            )
        if self.ignore_eos:
            body["ignore_eos"] = True
        return body


class ArrivalSchedule:
    """Absolute due times of an open-model arrival process (constant spacing or Poisson).

    Due times are computed from the start, never from when the previous request actually went out,
    so a slow gateway cannot slow the offered load down (no coordinated omission).
    """

    def __init__(self, rate_per_s: float, kind: Arrival, start_ns: int, seed: int = 0) -> None:
        if not rate_per_s > 0:
            raise ConfigError("--request-rate", rate_per_s, "a rate above 0 requests per second")
        self.rate_per_s = rate_per_s
        self.kind = kind
        self._rng = random.Random(seed)
        self._next_s = 0.0
        self.start_ns = start_ns

    def next_ns(self) -> int:
        """The due time of the next request (``perf_counter_ns`` scale); the first is the start."""
        due = self.start_ns + int(self._next_s * 1e9)
        gap = self._rng.expovariate(self.rate_per_s) if self.kind == "poisson" else 1.0 / self.rate_per_s
        self._next_s += gap
        return due


@dataclass(frozen=True, slots=True)
class RampPlan:
    """Stepped concurrency: ``start`` users, plus ``step`` every ``step_s`` seconds, up to ``max_users``."""

    start: int
    step: int
    step_s: float
    max_users: int

    def __post_init__(self) -> None:
        if self.start < 1 or self.step < 1 or self.max_users < self.start:
            raise ConfigError(
                "--ramp-start/--ramp-step/--ramp-max",
                f"{self.start}/{self.step}/{self.max_users}",
                "start >= 1, step >= 1 and max >= start",
            )
        if not self.step_s > 0:
            raise ConfigError("--ramp-step-seconds", self.step_s, "a duration above 0 seconds")

    def levels(self) -> list[int]:
        """The user count of every step, in order."""
        return list(range(self.start, self.max_users + 1, self.step)) or [self.start]

    def duration_s(self) -> float:
        """How long the whole ramp runs."""
        return len(self.levels()) * self.step_s

    def step_at(self, elapsed_s: float) -> int | None:
        """Index of the step running ``elapsed_s`` after the start; None once the ramp is over."""
        index = math.floor(max(elapsed_s, 0.0) / self.step_s)
        return index if index < len(self.levels()) else None

    def users_at(self, elapsed_s: float) -> int | None:
        """The user count ``elapsed_s`` after the start; None once the ramp is over."""
        index = self.step_at(elapsed_s)
        return None if index is None else self.levels()[index]
