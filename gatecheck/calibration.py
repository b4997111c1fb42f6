"""The target's own tokens: one calibration request, request sizes in its tokens, what a 429 is about.

A target counts tokens with its model's tokenizer, not one per word: a word of filler may be one
token on one model and half of one on another. So nothing here assumes a rate. One request with a
prompt of a known number of *units* (words of filler) tells how many tokens the target counts for
it (``usage.prompt_tokens``, or Anthropic's ``usage.input_tokens``); every size a probe needs is
then expressed in those tokens (``TokenRate``). The rate includes the message's own overhead
(role, template), so it is an upper bound per unit: sizes planned from it are never larger than
planned in the target's tokens, and a probe meant to exceed a limit adds its own margin.

Pure functions: the conformance checks (httpx) and the load ``limits`` probe (locust) send the
calibration request their own way and share the arithmetic and the judgement here:

- ``TokenRate``: tokens per unit, and back;
- ``prompt_tokens_of``: the prompt tokens a response body reports;
- ``plan_tpm_burst``: the sequential TPM burst of ``ratelimit_tpm_enforced``;
- ``limit_named``: whether a 429 says it is about tokens or requests (headers or body).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

DOCUMENTED_CONTEXT_LENGTHS = {
    "deepseek-v4-flash": 1_000_000,
    "deepseek-v4-pro": 1_000_000,
    "qwen3.7-max": 1_000_000,
    "glm-5.7": 200_000,
    "kimi-k2.6": 256_000,
    "minimax-m3": 1_000_000,
}
"""000 Supported Models: context length per documented model (1M = 1,000,000)."""

CONTEXT_OVERSHOOT = 1.25
"""The over-long prompt is this many times the context length, in the target's tokens."""


def context_probe_tokens(context_length: int) -> int:
    """The over-long prompt's size, in the target's tokens, for a model of ``context_length``."""
    return int(context_length * CONTEXT_OVERSHOOT)


CALIBRATION_UNITS = 256
"""Units of filler in the calibration prompt: enough that the message overhead is a few percent."""

FILLER_UNIT = "x"
"""The filler word of the conformance probes (the load probes use their own words, calibrated alike)."""

LimitKind: TypeAlias = Literal["tokens", "requests"]

TPM_FILL_REQUESTS = 8
"""The TPM burst fills the limit with at most this many requests (each an eighth of it, or more)."""
TPM_MARGIN = 1.1
"""The TPM burst's requests add up to this share of the TPM: the calibrated rate may overstate a
request's tokens by a few percent, and the burst must still pass the TPM."""


def filler(units: int) -> str:
    """``units`` words of filler: the prompt of the calibration and of the sized probes."""
    return " ".join([FILLER_UNIT] * max(1, units))


@dataclass(frozen=True, slots=True)
class TokenRate:
    """What the target counted for a prompt of ``units`` units: ``prompt_tokens`` of its tokens."""

    units: int
    prompt_tokens: int

    def __post_init__(self) -> None:
        if self.units < 1 or self.prompt_tokens < 1:
            raise ValueError("a token rate needs a positive number of units and of tokens")

    @property
    def per_unit(self) -> float:
        """Tokens per unit (overhead included: an upper bound)."""
        return self.prompt_tokens / self.units

    def units_for(self, tokens: int) -> int:
        """The most units whose prompt costs at most ``tokens`` of the target's tokens (at least 1)."""
        return max(1, math.floor(tokens / self.per_unit))

    def units_over(self, tokens: int) -> int:
        """Units whose prompt surely costs more than ``tokens`` (``tokens`` / rate, rounded up, plus one)."""
        return math.ceil(tokens / self.per_unit) + 1

    def tokens_for(self, units: int) -> int:
        """The target's tokens for a prompt of ``units`` units (an upper bound)."""
        return math.ceil(units * self.per_unit)

    def describe(self) -> str:
        """For messages: ``256 words = 263 tokens (1.03 per word)``."""
        return f"{self.units} words = {self.prompt_tokens} tokens ({self.per_unit:.3g} per word)"


def prompt_tokens_of(body: Any) -> int | None:
    """The prompt tokens a response body reports (OpenAI ``prompt_tokens``, Anthropic ``input_tokens``)."""
    usage = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(usage, dict):
        return None
    for name in ("prompt_tokens", "input_tokens"):
        value = usage.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def total_tokens_of(body: Any) -> int | None:
    """All the tokens a response says it cost (``total_tokens``, else prompt + completion/output)."""
    usage = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(usage, dict):
        return None
    total = usage.get("total_tokens")
    if isinstance(total, int) and not isinstance(total, bool):
        return total
    prompt = prompt_tokens_of(body)
    output = usage.get("completion_tokens", usage.get("output_tokens"))
    if prompt is None or not isinstance(output, int) or isinstance(output, bool):
        return None
    return prompt + output


def rate_from(units: int, body: Any) -> TokenRate | None:
    """The rate a calibration answer gives, or None when it reports no prompt tokens."""
    tokens = prompt_tokens_of(body)
    return None if tokens is None else TokenRate(units, tokens)


@dataclass(frozen=True, slots=True)
class TpmBurst:
    """Requests of ``request_tokens`` (``units`` units of prompt, ``max_tokens`` of output), sent one
    after another from a fresh window, until a 429 or until the tokens admitted exceed the TPM by
    more than one request (``max_requests`` bounds it); ``rpm`` is how many the RPM admits."""

    tpm: int
    rpm: int
    units: int
    max_tokens: int
    request_tokens: int
    max_requests: int

    def exceeded(self, admitted_tokens: int, largest_request: int) -> bool:
        """Whether the admitted tokens passed the TPM by more than one request: no design may admit more."""
        return admitted_tokens > self.tpm + largest_request


def plan_tpm_burst(
    tpm: int, rpm: int, rate: TokenRate, *, max_tokens: int = 1, context_length: int | None = None
) -> TpmBurst | str:
    """The TPM burst for a key, or why it cannot be sized (a reason for "not checked").

    ``fill`` requests (at most ``TPM_FILL_REQUESTS``, and fewer than the RPM) make the TPM and a
    tenth more: a gateway charging before serving refuses the last of them, one charging after
    serving admits it and refuses the next, both within the RPM when it allows ``fill + 1``
    requests. Each request is at most about half the TPM (a tenth more) and half the context.
    """
    fill = max(2, min(TPM_FILL_REQUESTS, rpm - 1))
    budget = math.ceil(tpm * TPM_MARGIN / fill)
    if context_length is not None:
        budget = min(budget, context_length // 2)
    if budget - max_tokens < rate.per_unit:
        return (
            f"a request of at most {budget} tokens (about 1/{fill} of the TPM of {tpm}, and under half the "
            f"context) cannot hold one prompt word at this target's {rate.describe()}"
        )
    units = rate.units_for(budget - max_tokens)
    request_tokens = rate.tokens_for(units) + max_tokens
    needed = math.ceil(tpm / request_tokens) + 2
    if needed > TPM_FILL_REQUESTS + 4:
        return (
            f"requests under half the model's context of {context_length} tokens fill the TPM of {tpm} "
            f"only after {needed} requests, more than the {TPM_FILL_REQUESTS + 4} this check sends"
        )
    return TpmBurst(
        tpm=tpm,
        rpm=rpm,
        units=units,
        max_tokens=max_tokens,
        request_tokens=request_tokens,
        max_requests=math.ceil(tpm / request_tokens) + 3,
    )


_TOKENS_WORDS = re.compile(r"\btokens?\b|\btpm\b|\btokens?[-_ ]per[-_ ]min", re.IGNORECASE)
_REQUESTS_WORDS = re.compile(r"\brequests\b|\brpm\b|\brequests?[-_ ]per[-_ ]min", re.IGNORECASE)
_REASON_PHRASE = re.compile(r"(?:429 )?too[-_ ]many[-_ ]requests", re.IGNORECASE)
"""HTTP's reason phrase for 429 (RFC 6585), which every 429 may carry: it names no limit."""

_TOKEN_REMAINING = (
    "x-ratelimit-remaining-tokens",
    "anthropic-ratelimit-tokens-remaining",
    "anthropic-ratelimit-input-tokens-remaining",
)
_REQUEST_REMAINING = (
    "x-ratelimit-remaining-requests",
    "anthropic-ratelimit-requests-remaining",
    "x-ratelimit-remaining",
)


def limit_named(headers: Mapping[str, str], body: bytes | str) -> LimitKind | None:
    """Which limit a 429 says it hit: ``tokens``, ``requests``, or None when it does not say.

    The error body's code, type and message decide when they name one of the two (``tokens per
    minute``, ``TPM``, ``requests``, ``RPM``); otherwise the headers do, when one remaining count
    is 0 and the other is not. ``headers`` must be case-insensitive (httpx's, or lower-case keys).
    """
    said = _said_in_body(body)
    if said is not None:
        return said
    tokens_left = _first_count(headers, _TOKEN_REMAINING)
    requests_left = _first_count(headers, _REQUEST_REMAINING)
    if tokens_left == 0 and requests_left != 0:
        return "tokens"
    if requests_left == 0 and tokens_left != 0:
        return "requests"
    return None


def _said_in_body(body: bytes | str) -> LimitKind | None:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict):
        text = " ".join(str(error.get(k, "")) for k in ("code", "type", "message"))
    if _REASON_PHRASE.fullmatch(text.strip(" \t\r\n.!:")):
        return None  # only HTTP's reason phrase: the headers decide
    tokens = bool(_TOKENS_WORDS.search(text))
    requests = bool(_REQUESTS_WORDS.search(text))
    if tokens != requests:
        return "tokens" if tokens else "requests"
    return None


def _first_count(headers: Mapping[str, str], names: tuple[str, ...]) -> int | None:
    for name in names:
        value = headers.get(name)
        if value is not None and value.strip().isdigit():
            return int(value.strip())
    return None
