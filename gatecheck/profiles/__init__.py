"""Conformance profiles: which of the documents' disagreeing rules a target is held to.

A profile is a TOML file in this directory (``gateway``, ``openai``, ``lenient``). It picks the
error dialect (and the envelope of /v1/messages errors), the rate-limit header dialect, where
stream usage may appear, the reasoning field name, the rules that apply (``[rules]``) and how
severe each deviation is (``[severity]``: a failure rule id mapped to ``"warn"``, ``"fail"`` or
``"ignore"``). How hard a finding is graded follows its rule's provenance first (``[grading]``:
documented, protocol, sdk, judgement -> fail, warn or ignore; see ``gatecheck.rules``), then a
per-rule ``[severity]`` override. Profiles are data so a reader can see, in one place, every
judgement call a verdict depends on.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from gatecheck.errors import ConfigError
from gatecheck.rules import PROVENANCES, rule, rules

PROFILE_DIR = Path(__file__).resolve().parent

ErrorDialect = Literal["gateway", "openai", "any"]
RateLimitDialect = Literal["x-ratelimit", "openai", "anthropic", "ietf", "any"]
StreamUsage = Literal["last-chunk", "separate-chunk"]
MessagesErrorDialect = Literal["gateway", "anthropic", "either"]

ERROR_DIALECTS: tuple[str, ...] = ("gateway", "openai", "any")
RATELIMIT_DIALECTS: tuple[str, ...] = ("x-ratelimit", "openai", "anthropic", "ietf", "any")
STREAM_USAGE: tuple[str, ...] = ("last-chunk", "separate-chunk")
MESSAGES_ERROR_DIALECTS: tuple[str, ...] = ("gateway", "anthropic", "either")
REASONING_FIELDS: tuple[str, ...] = ("reasoning_content", "reasoning")
SEVERITIES: tuple[str, ...] = ("fail", "warn", "ignore")
RULES: tuple[str, ...] = ("x_api_key_everywhere",)

_KEYS = (
    "description",
    "error_dialect",
    "messages_error_dialect",
    "ratelimit_dialect",
    "stream_usage",
    "reasoning_field",
    "rules",
    "grading",
    "severity",
)


@dataclass(frozen=True)
class Profile:
    """One profile, validated."""

    name: str
    description: str
    error_dialect: ErrorDialect
    ratelimit_dialect: RateLimitDialect
    stream_usage: StreamUsage
    reasoning_field: str
    rules: frozenset[str]
    grading: Mapping[str, str]
    severity: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    messages_error_dialect: MessagesErrorDialect = "either"
    """The envelope of /v1/messages errors: 002's, Anthropic's, or either (absent from a file: either)."""

    def has_rule(self, rule: str) -> bool:
        """True when the profile states ``rule`` (a ``[rules]`` key set to true)."""
        return rule in self.rules

    def severity_of(self, rule_id: str) -> str:
        """fail, warn or ignore for a finding of ``rule_id``: its override, else its provenance's grade."""
        override = self.severity.get(rule_id)
        if override is not None:
            return override
        return self.grading[rule(rule_id).provenance]


def profile_names(directory: Path = PROFILE_DIR) -> tuple[str, ...]:
    """The names of the profiles shipped in ``directory``, sorted."""
    return tuple(sorted(p.stem for p in directory.glob("*.toml")))


def load_profile(name: str, directory: Path = PROFILE_DIR) -> Profile:
    """Read and validate profile ``name``; a bad name or file is one ``ConfigError``."""
    names = profile_names(directory)
    if name not in names:
        raise ConfigError("profile", name, ", ".join(names))
    path = directory / f"{name}.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"profile file {path}", str(exc), "valid TOML") from None
    return _build(name, data)


def _build(name: str, data: Mapping[str, Any]) -> Profile:
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        raise ConfigError(f"profile {name}", unknown[0], ", ".join(_KEYS))
    stated = data.get("rules", {})
    for key, value in stated.items():
        if key not in RULES or not isinstance(value, bool):
            raise ConfigError(f"profile {name}: rules.{key}", value, f"true/false for {', '.join(RULES)}")
    grading = data.get("grading", {})
    for provenance in PROVENANCES:
        if grading.get(provenance) not in SEVERITIES:
            raise ConfigError(
                f"profile {name}: grading.{provenance}", grading.get(provenance), ", ".join(SEVERITIES)
            )
    extra = sorted(set(grading) - set(PROVENANCES))
    if extra:
        raise ConfigError(f"profile {name}: grading", extra[0], ", ".join(PROVENANCES))
    severity = data.get("severity", {})
    known = rules()
    for rule_id, value in severity.items():
        if rule_id not in known:
            raise ConfigError(f"profile {name}: severity", rule_id, "a rule id of gatecheck/rules.toml")
        if value not in SEVERITIES:
            raise ConfigError(f"profile {name}: severity.{rule_id}", value, ", ".join(SEVERITIES))
    return Profile(
        name=name,
        description=str(data.get("description", "")),
        error_dialect=_choice(name, data, "error_dialect", ERROR_DIALECTS),  # type: ignore[arg-type]
        ratelimit_dialect=_choice(name, data, "ratelimit_dialect", RATELIMIT_DIALECTS),  # type: ignore[arg-type]
        stream_usage=_choice(name, data, "stream_usage", STREAM_USAGE),  # type: ignore[arg-type]
        reasoning_field=_choice(name, data, "reasoning_field", REASONING_FIELDS),
        rules=frozenset(key for key, on in stated.items() if on),
        grading=MappingProxyType({p: grading[p] for p in PROVENANCES}),
        severity=MappingProxyType(dict(severity)),
        messages_error_dialect=_choice(  # type: ignore[arg-type]
            name,
            {"messages_error_dialect": "either", **data},
            "messages_error_dialect",
            MESSAGES_ERROR_DIALECTS,
        ),
    )


def _choice(name: str, data: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = data.get(key)
    if value not in allowed:
        raise ConfigError(f"profile {name}: {key}", value, ", ".join(allowed))
    return str(value)
