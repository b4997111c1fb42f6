"""Target configuration: which deployment to check, with which key, models, claims, limits and budget.

Every setting comes from one of four places; the first that gives it wins:

    command line  >  environment (GATECHECK_*)  >  target file (TOML)  >  defaults

API keys are the exception: they come ONLY from the command line or the environment. The file
names the variable (``api_key_env``, default ``GATECHECK_API_KEY``); a key written in the file is
a ``ConfigError``. An empty environment variable counts as unset.

``TARGET_OPTIONS`` is the one table of option names, environment variables and fields; the CLI
(``add_target_arguments``), the pytest plugin and the locust plugin all build their options from it
and pass what they parsed to ``load_target``/``load_targets`` as ``{option.dest: value}`` (``None``
meaning not given). Every bad value raises ONE ``ConfigError`` naming the field, where the value
came from and what is allowed; no message ever contains a key.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, TypeAlias, cast
from urllib.parse import urlsplit, urlunsplit

from gatecheck._types import JSONObject
from gatecheck.errors import ConfigError
from gatecheck.redaction import REDACTED, Secret, redact

AuthStyle: TypeAlias = Literal["bearer", "x-api-key"]
PathLike: TypeAlias = str | os.PathLike[str]

CAPABILITIES: tuple[str, ...] = (
    "streaming",
    "tools",
    "json_mode",
    "json_schema",
    "n",
    "reasoning",
    "multimodal",
    "anthropic",
    "images",
    "search",
    "balance",
    "models",
    "ratelimit",
)
"""What a target may claim to support; a check needing an unclaimed capability is skipped.

``ratelimit`` is the claim that the target limits requests per key (002 Rate Limits); a target
without rate limiting sets it false and the whole rate-limit area is skipped with that reason.
"""

PROFILES: tuple[str, ...] = ("gateway", "openai", "lenient")
"""Which reading of the documents to check against (api-docs/README.md: "Where the documents disagree")."""

AUTH_STYLES: tuple[AuthStyle, ...] = ("bearer", "x-api-key")
MODEL_ROLES: tuple[str, ...] = ("chat", "reasoning", "images", "search")
DEFAULT_KEY_ENV = "GATECHECK_API_KEY"
DEFAULT_KEY_2_ENV = "GATECHECK_API_KEY_2"
REFERENCE_NAME = "reference"
"""The name of a target without a base URL (the embedded reference gateway)."""

MODEL_SETTINGS: tuple[str, ...] = ("context_length",)
"""What a ``[models.<id>]`` table of the target file may declare about one model."""
MAX_CONTEXT_LENGTH = 1_000_000_000

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEY_CHARS = re.compile(r"[\x21-\x7e]+")
_MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Models:
    """Model ids by role: the checks pick the one their endpoint needs."""

    chat: str = "deepseek-v4-flash"
    reasoning: str = "deepseek-v4-pro"
    images: str = "gpt-image-2"
    search: str = "deepseek-v4-flash"


@dataclass(frozen=True, slots=True)
class Target:
    """One deployment to check; ``base_url`` None means "start the embedded reference gateway"."""

    name: str = REFERENCE_NAME
    base_url: str | None = None
    api_key: Secret | None = None
    api_key_2: Secret | None = None
    api_key_env: str = DEFAULT_KEY_ENV
    api_key_2_env: str = DEFAULT_KEY_2_ENV
    auth: AuthStyle = "bearer"
    models: Models = field(default_factory=Models)
    capabilities: frozenset[str] = frozenset(CAPABILITIES)
    rpm: int = 60
    tpm: int = 100_000
    rpm_2: int | None = None
    """The second key's RPM (None: the same as ``rpm``)."""
    tpm_2: int | None = None
    """The second key's TPM (None: the same as ``tpm``)."""
    ratelimit_window: float = 60.0
    """The limits' window in seconds: a minute (RPM, TPM), shorter only for test gateways."""
    profile: str = "gateway"
    max_requests: int = 1000
    max_output_tokens: int = 64
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    total_timeout: float = 120.0
    max_response_bytes: int = 8 * _MIB
    context_lengths: tuple[tuple[str, int], ...] = ()
    """Context lengths in tokens declared per model id (``[models.<id>] context_length``)."""
    # The silence that ends a stream, and what a real gateway may need on the wire: extra headers
    # (a value read from an environment variable is a Secret), a CA bundle or no verification.
    # Proxies come from the standard variables (``gatecheck.net.proxy_for``).
    stall_seconds: float = 15.0
    headers: tuple[tuple[str, str | Secret], ...] = ()
    ca_bundle: str | None = None
    insecure: bool = False
    expected_failures: str | None = None
    """The target file's expected-failures file (``gatecheck.expected``), resolved against the file."""

    def context_length(self, model: str) -> int | None:
        """The context length the target file declares for ``model``, or None."""
        return dict(self.context_lengths).get(model)

    upstream: str | None = None
    """The upstream harness the gateway calls (``gatecheck upstream``); the ``upstream`` area needs it."""
    upstream_model: str | None = None
    """The model id that routes to the harness through the gateway (None: ``models.chat``)."""
    upstream_timeout_s: float = 60.0
    """The gateway's documented upstream timeout: a silent upstream gets 504 within it (plus a margin)."""
    retries: int = 2
    """Retries the gateway documents for a failed upstream attempt."""

    def claims(self, capability: str) -> bool:
        """Whether the target claims ``capability`` (a name from ``CAPABILITIES``)."""
        if capability not in CAPABILITIES:
            raise ValueError(f"unknown capability {capability!r}; known: {', '.join(CAPABILITIES)}")
        return capability in self.capabilities

    def key_state(self, which: Literal[1, 2] = 1) -> str:
        """Where a key comes from and whether it is set, e.g. ``$GATECHECK_API_KEY (set)``."""
        secret, env = (self.api_key, self.api_key_env) if which == 1 else (self.api_key_2, self.api_key_2_env)
        if secret is None:
            return f"${env} (not set)"
        return f"{secret.source or 'key'} (set)"

    def limits(self, which: Literal[1, 2] = 1) -> tuple[int, int]:
        """(RPM, TPM) declared for key ``which``; the second key's default to the first's."""
        if which == 1:
            return self.rpm, self.tpm
        return (self.rpm if self.rpm_2 is None else self.rpm_2), (
            self.tpm if self.tpm_2 is None else self.tpm_2
        )

    @property
    def header_secrets(self) -> tuple[Secret, ...]:
        """The extra header values read from the environment: scrubbed like keys wherever text is shown."""
        return tuple(value for _, value in self.headers if isinstance(value, Secret))

    def header_state(self) -> dict[str, str]:
        """The extra headers for display: a literal value as is, one from the environment ``$VAR (set)``."""
        return {
            name: f"{value.source} (set)" if isinstance(value, Secret) else value
            for name, value in self.headers
        }

    def describe(self) -> str:
        """A one-line summary for headers and logs; keys appear only as where they come from."""
        where = self.base_url or "embedded reference gateway"
        parts = [
            f"auth {self.auth}",
            f"key {self.key_state(1)}",
            f"key 2 {self.key_state(2)}",
            f"model {self.models.chat}",
            f"profile {self.profile}",
            f"limits {self.rpm} rpm / {self.tpm} tpm",
            f"budget {self.max_requests} requests x {self.max_output_tokens} tokens",
        ]
        if self.limits(2) != self.limits(1):
            parts.insert(6, "key 2 limits {} rpm / {} tpm".format(*self.limits(2)))
        if self.headers:
            parts.append(f"headers {' '.join(name for name, _ in self.headers)}")
        if self.insecure or self.ca_bundle:
            parts.append("TLS not verified" if self.insecure else f"CA bundle {self.ca_bundle}")
        if self.upstream is not None:
            parts.append(
                f"upstream {self.upstream} (timeout {self.upstream_timeout_s:g} s, {self.retries} retries)"
            )
        if self.expected_failures:
            parts.append(f"expected failures {self.expected_failures}")
        unclaimed = [c for c in CAPABILITIES if c not in self.capabilities]
        if unclaimed:
            parts.append(f"not claimed: {' '.join(unclaimed)}")
        return f"{self.name}: {where} ({', '.join(parts)})"

    def redacted(self) -> JSONObject:
        """The target as a JSON-ready dict for reports: keys replaced by ``key_state()``."""
        as_json: JSONObject = {f.name: getattr(self, f.name) for f in fields(self)}
        as_json["api_key"] = self.key_state(1)
        as_json["api_key_2"] = self.key_state(2)
        as_json["models"] = {role: getattr(self.models, role) for role in MODEL_ROLES}
        as_json["capabilities"] = [c for c in CAPABILITIES if c in self.capabilities]
        as_json["context_lengths"] = dict(self.context_lengths)
        as_json["headers"] = self.header_state()
        return as_json


@dataclass(frozen=True, slots=True)
class TargetOption:
    """One row of the option table: a command-line flag, its environment twin and the field it sets.

    ``field`` is the key in the target file too (``models.chat`` is ``chat`` under ``[models]``);
    ``env`` None means command line and file only. Values arrive as strings and are parsed here.
    """

    field: str
    flag: str
    env: str | None
    help: str
    metavar: str
    kind: Literal["value", "append", "flag"] = "value"
    """``append``: repeatable, the values arrive as a list; ``flag``: takes no value (True when given)."""

    @property
    def action(self) -> str:
        """The argparse/pytest ``action`` for this kind (``None`` stays "not given" for every kind)."""
        return {"value": "store", "append": "append", "flag": "store_const"}[self.kind]

    @property
    def dest(self) -> str:
        """The argparse/pytest destination name, the key of the ``cli`` mapping."""
        return self.flag.removeprefix("--").replace("-", "_")


TARGET_OPTIONS: tuple[TargetOption, ...] = (
    TargetOption(
        "name",
        "--target-name",
        "GATECHECK_TARGET_NAME",
        "name of the target in reports (default: the file name, the host, or 'reference')",
        "NAME",
    ),
    TargetOption(
        "base_url",
        "--base-url",
        "GATECHECK_BASE_URL",
        "gateway URL without /v1, e.g. https://gw.example.com (absent: start the reference gateway)",
        "URL",
    ),
    TargetOption(
        "api_key",
        "--api-key",
        None,
        "API key (prefer the environment variable named by --api-key-env)",
        "KEY",
    ),
    TargetOption(
        "api_key_2",
        "--api-key-2",
        None,
        "a second key with its own limits (prefer the variable named by --api-key-2-env)",
        "KEY",
    ),
    TargetOption(
        "api_key_env",
        "--api-key-env",
        None,
        f"environment variable holding the API key (default {DEFAULT_KEY_ENV})",
        "VAR",
    ),
    TargetOption(
        "api_key_2_env",
        "--api-key-2-env",
        None,
        f"environment variable holding the second key (default {DEFAULT_KEY_2_ENV})",
        "VAR",
    ),
    TargetOption(
        "auth",
        "--auth",
        "GATECHECK_AUTH",
        "how the key is sent: bearer (Authorization: Bearer) or x-api-key",
        "STYLE",
    ),
    TargetOption("models.chat", "--model", "GATECHECK_MODEL", "chat model id", "MODEL"),
    TargetOption(
        "models.reasoning",
        "--reasoning-model",
        "GATECHECK_REASONING_MODEL",
        "reasoning model id",
        "MODEL",
    ),
    TargetOption(
        "models.images", "--images-model", "GATECHECK_IMAGES_MODEL", "image generation model id", "MODEL"
    ),
    TargetOption(
        "models.search",
        "--search-model",
        "GATECHECK_SEARCH_MODEL",
        "search completions model id",
        "MODEL",
    ),
    TargetOption(
        "capabilities",
        "--capabilities",
        "GATECHECK_CAPABILITIES",
        "claimed capabilities: 'all', 'none', a comma list, or exclusions like '-images,-search'",
        "LIST",
    ),
    TargetOption("rpm", "--rpm", "GATECHECK_RPM", "documented requests per minute per key", "N"),
    TargetOption("tpm", "--tpm", "GATECHECK_TPM", "documented tokens per minute per key", "N"),
    TargetOption(
        "rpm_2", "--rpm-2", "GATECHECK_RPM_2", "the second key's requests per minute (default --rpm)", "N"
    ),
    TargetOption(
        "tpm_2", "--tpm-2", "GATECHECK_TPM_2", "the second key's tokens per minute (default --tpm)", "N"
    ),
    TargetOption(
        "ratelimit_window",
        "--ratelimit-window",
        "GATECHECK_RATELIMIT_WINDOW",
        "seconds of the rate-limit window (60: RPM and TPM are per minute; shorter for test gateways)",
        "S",
    ),
    TargetOption(
        "profile",
        "--profile",
        "GATECHECK_PROFILE",
        f"which reading of the documents to check: {', '.join(PROFILES)}",
        "PROFILE",
    ),
    TargetOption(
        "max_requests",
        "--budget-requests",
        "GATECHECK_BUDGET_REQUESTS",
        "most requests a run may send to the target",
        "N",
    ),
    TargetOption(
        "max_output_tokens",
        "--max-output-tokens",
        "GATECHECK_MAX_OUTPUT_TOKENS",
        "most output tokens asked for per request",
        "N",
    ),
    TargetOption(
        "connect_timeout",
        "--connect-timeout",
        "GATECHECK_CONNECT_TIMEOUT",
        "seconds to wait for a connection",
        "S",
    ),
    TargetOption(
        "read_timeout",
        "--read-timeout",
        "GATECHECK_READ_TIMEOUT",
        "seconds to wait for each read",
        "S",
    ),
    TargetOption(
        "total_timeout",
        "--total-timeout",
        "GATECHECK_TOTAL_TIMEOUT",
        "seconds a whole request may take, streams included",
        "S",
    ),
    TargetOption(
        "max_response_bytes",
        "--max-response-bytes",
        "GATECHECK_MAX_RESPONSE_BYTES",
        "largest response body accepted, in bytes",
        "BYTES",
    ),
    TargetOption(
        "stall_seconds",
        "--stall-seconds",
        "GATECHECK_STALL_SECONDS",
        "end a streamed response that sends no byte for this long, as a stall (default 15)",
        "S",
    ),
    TargetOption(
        "headers",
        "--header",
        None,
        "extra request header 'Name: value', repeatable; a value '$VAR' is read from that variable",
        "'NAME: VALUE'",
        kind="append",
    ),
    TargetOption(
        "ca_bundle",
        "--ca-bundle",
        "GATECHECK_CA_BUNDLE",
        "PEM file (or directory) of CA certificates to trust for https",
        "PATH",
    ),
    TargetOption(
        "insecure",
        "--insecure",
        "GATECHECK_INSECURE",
        "do not verify the target's TLS certificate (a test deployment only)",
        "",
        kind="flag",
    ),
    TargetOption(
        "upstream",
        "--upstream",
        "GATECHECK_UPSTREAM",
        "URL of the upstream harness the gateway calls (gatecheck upstream); the upstream area needs it",
        "URL",
    ),
    TargetOption(
        "upstream_model",
        "--upstream-model",
        "GATECHECK_UPSTREAM_MODEL",
        "model id a client sends the gateway that routes to the harness (default: the chat model)",
        "MODEL",
    ),
    TargetOption(
        "upstream_timeout_s",
        "--upstream-timeout",
        "GATECHECK_UPSTREAM_TIMEOUT",
        "the gateway's documented upstream timeout in seconds (default 60)",
        "S",
    ),
    TargetOption(
        "retries",
        "--upstream-retries",
        "GATECHECK_UPSTREAM_RETRIES",
        "retries the gateway documents for a failed upstream attempt (default 2)",
        "N",
    ),
)
"""The one table of target options, in help order."""

_OPTIONS_BY_FIELD = {option.field: option for option in TARGET_OPTIONS}
_SECRET_FIELDS = ("api_key", "api_key_2")
_FILE_KEYS = (
    *(f for f in _OPTIONS_BY_FIELD if f not in _SECRET_FIELDS and not f.startswith("models.")),
    "models",
    "expected_failures",
)
_CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key"})
"""Headers the key goes in: set with --api-key/--auth, never as an extra header."""
_MANAGED_HEADERS = frozenset({"content-type", "content-length", "host", "transfer-encoding", "connection"})
"""Headers the client writes for each request itself."""
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_ENV_REFERENCE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_PER_TARGET_FIELDS = ("name", "base_url", "api_key", "api_key_2")
"""Settings that cannot be shared by several target files (every target would get the same one)."""
_DEFAULTS = Target()

_Parser: TypeAlias = Callable[[object, str], object]


# ---------------------------------------------------------------- value parsers (one per kind of field)


def _suggest(word: str, choices: Iterable[str]) -> str:
    """``; did you mean 'x'?`` when a choice is close to ``word``, else nothing."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _text(value: object, where: str, allowed: str) -> str:
    """A non-empty single-line string."""
    if not isinstance(value, str) or not value.strip() or not value.isprintable():
        raise ConfigError(where, value, allowed)
    return value.strip()


def _parse_name(value: object, where: str) -> str:
    """A target name: shown in reports and matrix columns."""
    return _text(value, where, "a non-empty single-line name")


def _parse_model(value: object, where: str) -> str:
    """A model id as the API takes it."""
    model = _text(value, where, "a model id without spaces")
    if any(c.isspace() for c in model):
        raise ConfigError(where, value, "a model id without spaces")
    return model


def _choice(choices: tuple[str, ...]) -> _Parser:
    """A parser accepting exactly one of ``choices``."""

    def parse(value: object, where: str) -> str:
        if isinstance(value, str) and value in choices:
            return value
        hint = _suggest(value, choices) if isinstance(value, str) else ""
        raise ConfigError(where, value, f"one of {', '.join(choices)}{hint}")

    return parse


def _integer(low: int, high: int) -> _Parser:
    """A parser for an int in ``[low, high]``; strings of digits (environment, command line) count."""
    allowed = f"an integer from {low} to {high}"

    def parse(value: object, where: str) -> int:
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str):
            try:
                number = int(value.strip())
            except ValueError:
                number = None
        if number is None or not low <= number <= high:
            raise ConfigError(where, value, allowed)
        return number

    return parse


def _seconds(high: float) -> _Parser:
    """A parser for a positive number of seconds up to ``high``."""
    allowed = f"a number of seconds above 0 and at most {high:g}"

    def parse(value: object, where: str) -> float:
        number: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                number = None
        if number is None or not 0 < number <= high:
            raise ConfigError(where, value, allowed)
        return number

    return parse


def _parse_base_url(value: object, where: str) -> str:
    """An http(s) origin with an optional path prefix; no credentials, query, fragment or /v1."""
    allowed = "an http:// or https:// URL like https://gw.example.com (no credentials, query or fragment)"
    url = _text(value, where, allowed)
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        raise ConfigError(where, value, allowed) from None
    if parts.username is not None or parts.password is not None:
        # The credentials may be a key: show the URL without them.
        bare = urlunsplit(parts._replace(netloc=f"{REDACTED}@{parts.hostname}"))
        raise ConfigError(where, bare, allowed + "; send keys with --api-key or the environment")
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise ConfigError(where, value, allowed)
    if parts.query or parts.fragment:
        raise ConfigError(where, value, allowed)
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        raise ConfigError(
            where, value, allowed + "; leave out the trailing /v1, gatecheck adds /v1/... itself"
        )
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _parse_env_name(value: object, where: str) -> str:
    """An environment variable NAME; an invalid one may be a pasted key, so it is never echoed."""
    if isinstance(value, str) and _ENV_NAME.fullmatch(value):
        return value
    raise ConfigError(
        where, REDACTED, "the NAME of an environment variable (letters, digits, _), not the key"
    )


def _parse_capabilities(value: object, where: str) -> frozenset[str]:
    """'all', 'none', 'a,b' or exclusions '-a,-b' (all but those); or a collection of names.

    Items apply left to right, from nothing, or from everything when the first is an exclusion.
    """
    if isinstance(value, frozenset | set | list | tuple):
        items = [str(v) for v in value]
    elif isinstance(value, str):
        items = [item.strip() for item in value.split(",") if item.strip()]
    else:
        raise ConfigError(where, value, "a comma-separated list of capabilities")
    claimed: set[str] = set(CAPABILITIES) if items and items[0].startswith("-") else set()
    for item in items:
        name = item.removeprefix("-")
        if item in ("all", "none"):
            claimed = set(CAPABILITIES) if item == "all" else set()
        elif name in CAPABILITIES and item.startswith("-"):
            claimed.discard(name)
        elif name in CAPABILITIES:
            claimed.add(name)
        else:
            raise ConfigError(
                where, item, f"all, none or one of {', '.join(CAPABILITIES)}{_suggest(name, CAPABILITIES)}"
            )
    return frozenset(claimed)


def _parse_flag(value: object, where: str) -> bool:
    """A boolean: true/false in a file, 1/0, yes/no, true/false from the environment or a command line."""
    if isinstance(value, bool):
        return value
    words = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}
    if isinstance(value, str) and value.strip().lower() in words:
        return words[value.strip().lower()]
    raise ConfigError(where, value, "true or false (1/0, yes/no)")


def _parse_path(value: object, where: str) -> str:
    """An existing file or directory (a CA bundle)."""
    path = _text(value, where, "the path of an existing file or directory")
    if not Path(path).expanduser().exists():
        raise ConfigError(where, value, "the path of an existing file or directory (nothing is there)")
    return str(Path(path).expanduser())


_PARSERS: dict[str, _Parser] = {
    "name": _parse_name,
    "base_url": _parse_base_url,
    "api_key_env": _parse_env_name,
    "api_key_2_env": _parse_env_name,
    "auth": _choice(AUTH_STYLES),
    **{f"models.{role}": _parse_model for role in MODEL_ROLES},
    "capabilities": _parse_capabilities,
    "rpm": _integer(1, 1_000_000),
    "tpm": _integer(1, 1_000_000_000),
    "rpm_2": _integer(1, 1_000_000),
    "tpm_2": _integer(1, 1_000_000_000),
    "ratelimit_window": _seconds(3600),
    "profile": _choice(PROFILES),
    "max_requests": _integer(1, 1_000_000),
    "max_output_tokens": _integer(1, 1_000_000),
    "connect_timeout": _seconds(3600),
    "read_timeout": _seconds(3600),
    "total_timeout": _seconds(24 * 3600),
    "max_response_bytes": _integer(1024, 1024 * _MIB),
    "stall_seconds": _seconds(3600),
    "ca_bundle": _parse_path,
    "insecure": _parse_flag,
    "upstream": _parse_base_url,
    "upstream_model": _parse_model,
    "upstream_timeout_s": _seconds(3600),
    "retries": _integer(0, 100),
}


def _parse_key(value: object, where: str, source: str) -> Secret:
    """A key as the client can send it in a header; errors show ``***`` instead of the value."""
    if isinstance(value, Secret):
        value = value.reveal()
    if not isinstance(value, str) or not _KEY_CHARS.fullmatch(value):
        raise ConfigError(where, REDACTED, "printable ASCII without spaces (look for a trailing newline)")
    return Secret(value, source=source)


def _header(name: object, value: object, where: str, env: Mapping[str, str]) -> tuple[str, str | Secret]:
    """One extra header; a value ``$VAR`` (or ``${VAR}``) is read from that variable, as a Secret."""
    if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
        raise ConfigError(where, name, "a header name (letters, digits and -)")
    if name.lower() in _CREDENTIAL_HEADERS:
        raise ConfigError(
            where, name, "another header: the key goes in with --api-key or $GATECHECK_API_KEY and --auth"
        )
    if name.lower() in _MANAGED_HEADERS:
        raise ConfigError(where, name, "another header: gatecheck writes this one for each request")
    if not isinstance(value, str):
        raise ConfigError(where, value, 'a string: "value" or "$VARIABLE"')
    reference = _ENV_REFERENCE.fullmatch(value.strip())
    if reference is None:
        if not value.isprintable():
            raise ConfigError(where, REDACTED, "a printable single-line value")
        return name, value.strip()
    variable = reference[1] or reference[2]
    if not env.get(variable):
        raise ConfigError(where, f"${variable}", f"a variable that is set: ${variable} is empty or unset")
    if not env[variable].isprintable():
        raise ConfigError(
            where, f"${variable}", "a printable single-line value (look for a trailing newline)"
        )
    return name, Secret(env[variable].strip(), source=f"${variable}")


def _header_line(line: object, where: str) -> tuple[str, str]:
    """``Name: value`` as given to ``--header``."""
    if not isinstance(line, str) or ":" not in line:
        raise ConfigError(where, REDACTED, "'Name: value' (or 'Name: $VARIABLE')")
    name, _, value = line.partition(":")
    return name.strip(), value.strip()


def _resolve_headers(sources: _Sources) -> tuple[tuple[str, str | Secret], ...]:
    """The file's ``[headers]``, then each ``--header`` (the command line wins per name, any case)."""
    merged: dict[str, tuple[str, str | Secret]] = {}
    file_headers = sources.file.get("headers", {})
    for name, value in cast(dict[str, object], file_headers).items():
        merged[name.lower()] = _header(name, value, f"headers.{name} (in {sources.file_label})", sources.env)
    given = sources.cli.get(_OPTIONS_BY_FIELD["headers"].dest)
    for line in [given] if isinstance(given, str) else list(cast(Sequence[object], given or ())):
        name, value = _header_line(line, "header (from --header)")
        merged[name.lower()] = _header(name, value, f"header {name} (from --header)", sources.env)
    return tuple(merged.values())


# ---------------------------------------------------------------- the target file


def _read_toml(path: Path) -> dict[str, object]:
    """The file's TOML table; unreadable or invalid files are a ConfigError with the line."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError("target file", str(path), f"a readable TOML file ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("target file", str(path), f"valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError("target file", str(path), "a UTF-8 TOML file") from None


def _capabilities_table(table: object, label: str) -> frozenset[str]:
    """``[capabilities]``: ``name = true|false``; unlisted capabilities stay claimed."""
    if not isinstance(table, dict):
        raise ConfigError(f"capabilities (in {label})", table, "a table like [capabilities] images = false")
    claimed = set(CAPABILITIES)
    for name, flag in table.items():
        if name not in CAPABILITIES:
            hint = _suggest(name, CAPABILITIES)
            raise ConfigError(
                f"key in [capabilities] (in {label})", name, f"one of {', '.join(CAPABILITIES)}{hint}"
            )
        if not isinstance(flag, bool):
            raise ConfigError(f"capabilities.{name} (in {label})", flag, "true or false")
        if not flag:
            claimed.discard(name)
    return frozenset(claimed)


def _models_table(table: object, label: str) -> dict[str, object]:
    """``[models]``: role = model id, flattened to ``models.<role>``; ``[models.<id>]`` tables
    declare what is known of one model, gathered under ``context_lengths``."""
    if not isinstance(table, dict):
        raise ConfigError(f"models (in {label})", table, 'a table like [models] chat = "model-id"')
    values: dict[str, object] = {}
    declared: list[tuple[str, int]] = []
    for role, value in table.items():
        if isinstance(value, dict):
            length = _model_settings(role, value, label)
            if length is not None:
                declared.append((role, length))
        elif role in MODEL_ROLES:
            values[f"models.{role}"] = value
        else:
            hint = _suggest(role, MODEL_ROLES)
            raise ConfigError(
                f"key in [models] (in {label})",
                role,
                f"one of {', '.join(MODEL_ROLES)}{hint}, or a [models.<id>] table",
            )
    if declared:
        values["context_lengths"] = tuple(declared)
    return values


def _model_settings(model: str, table: dict[str, object], label: str) -> int | None:
    """``[models.<id>]``: what the target declares about one model (its context length, in tokens)."""
    _parse_model(model, f"model id in [models.{model}] (in {label})")
    for key in table:
        if key not in MODEL_SETTINGS:
            hint = _suggest(key, MODEL_SETTINGS)
            raise ConfigError(
                f"key in [models.{model}] (in {label})", key, f"one of {', '.join(MODEL_SETTINGS)}{hint}"
            )
    if "context_length" not in table:
        return None
    where = f"models.{model}.context_length (in {label})"
    value = table["context_length"]
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(where, value, f"an integer from 1 to {MAX_CONTEXT_LENGTH} (tokens)")
    return cast(int, _integer(1, MAX_CONTEXT_LENGTH)(value, where))


def _expected_failures_path(value: object, target_file: Path) -> str:
    """``expected_failures = "path"``: a TOML file, relative to the target file's directory."""
    where = f"expected_failures (in {target_file})"
    text = _text(value, where, "the path of an expected-failures TOML file, relative to this file")
    path = (target_file.parent / Path(text).expanduser()).resolve()
    if not path.is_file():
        raise ConfigError(where, value, f"an existing file (nothing at {path})")
    return str(path)


def _key_in_file(key: str, label: str) -> ConfigError:
    """The error for a key written in the file; the value is never shown."""
    env_field, default_env = (
        ("api_key_env", DEFAULT_KEY_ENV) if key == "api_key" else ("api_key_2_env", DEFAULT_KEY_2_ENV)
    )
    return ConfigError(
        f"{key} (in {label})",
        REDACTED,
        f"no key in the file: export it in an environment variable (default ${default_env}; "
        f"another name goes in {env_field}) or pass --{key.replace('_', '-')}",
    )


def _file_values(path: Path) -> dict[str, object]:
    """The file's settings by field name; refuses keys, unknown names and misplaced tables."""
    label = str(path)
    values: dict[str, object] = {}
    for key, value in _read_toml(path).items():
        if key in _SECRET_FIELDS:
            raise _key_in_file(key, label)
        if key == "models":
            values.update(_models_table(value, label))
        elif key == "capabilities":
            values["capabilities"] = _capabilities_table(value, label)
        elif key == "headers" and not isinstance(value, dict):
            raise ConfigError(f"headers (in {label})", REDACTED, 'a table like [headers] X-Tenant = "acme"')
        elif key == "expected_failures":
            values[key] = _expected_failures_path(value, path)
        elif key in _FILE_KEYS:
            values[key] = value
        else:
            allowed = f"one of {', '.join(_FILE_KEYS)}{_suggest(key, _FILE_KEYS)}"
            raise ConfigError(f"key (in {label})", key, allowed)
    return values


# ---------------------------------------------------------------- resolution


@dataclass(frozen=True, slots=True)
class _Sources:
    """The three layers a value can come from, searched in precedence order."""

    cli: Mapping[str, object]
    env: Mapping[str, str]
    file: Mapping[str, object]
    file_label: str

    def pick(self, option: TargetOption) -> tuple[object, str] | None:
        """The raw value with where it came from (``--rpm``, ``$GATECHECK_RPM``, the file), or None."""
        given = self.cli.get(option.dest)
        if given is not None:
            return given, option.flag
        if option.env is not None and self.env.get(option.env):
            return self.env[option.env], f"${option.env}"
        if option.field in self.file:
            return self.file[option.field], self.file_label
        return None

    def value(self, field_name: str, default: object) -> object:
        """The parsed value of one field, or ``default`` when no layer gives it."""
        picked = self.pick(_OPTIONS_BY_FIELD[field_name])
        if picked is None:
            return default
        raw, origin = picked
        return _PARSERS[field_name](raw, f"{field_name} (from {origin})")


def _resolve_key(sources: _Sources, key_field: str, env_field: str) -> tuple[Secret | None, str]:
    """A key from the command line, else from the variable ``env_field`` names; with that name.

    A variable named explicitly (file or command line) must be set; the default one may be unset.
    """
    env_name = cast(str, sources.value(env_field, getattr(_DEFAULTS, env_field)))
    option = _OPTIONS_BY_FIELD[key_field]
    given = sources.cli.get(option.dest)
    if given is not None:
        return _parse_key(given, f"{key_field} (from {option.flag})", option.flag), env_name
    if sources.env.get(env_name):
        return _parse_key(sources.env[env_name], f"{key_field} (from ${env_name})", f"${env_name}"), env_name
    named = sources.pick(_OPTIONS_BY_FIELD[env_field])
    if named is not None:
        raise ConfigError(
            f"{env_field} (from {named[1]})",
            env_name,
            f"a variable that is set: ${env_name} is empty or unset",
        )
    return None, env_name


def _default_name(path: Path | None, base_url: str | None) -> str:
    """The file's stem, else the gateway's host, else ``reference``."""
    if path is not None:
        return path.stem
    if base_url is not None:
        return urlsplit(base_url).hostname or base_url
    return REFERENCE_NAME


_PLAIN_FIELDS = (
    "auth",
    "capabilities",
    "rpm",
    "tpm",
    "rpm_2",
    "tpm_2",
    "ratelimit_window",
    "profile",
    "max_requests",
    "max_output_tokens",
    "connect_timeout",
    "read_timeout",
    "total_timeout",
    "max_response_bytes",
    "stall_seconds",
    "ca_bundle",
    "insecure",
    "upstream",
    "upstream_model",
    "upstream_timeout_s",
    "retries",
)
"""Fields that are one parsed value with a default; the rest need a rule of their own."""


def _assemble(sources: _Sources, path: Path | None, keys: dict[str, Any]) -> Target:
    """Every non-key field from its layers, on top of the defaults."""
    models = Models(
        **{
            role: cast(str, sources.value(f"models.{role}", getattr(_DEFAULTS.models, role)))
            for role in MODEL_ROLES
        }
    )
    base_url = cast("str | None", sources.value("base_url", None))
    changes: dict[str, Any] = {f: sources.value(f, getattr(_DEFAULTS, f)) for f in _PLAIN_FIELDS}
    changes["name"] = sources.value("name", _default_name(path, base_url))
    changes["context_lengths"] = sources.file.get("context_lengths", ())
    changes["expected_failures"] = sources.file.get("expected_failures")
    changes["headers"] = _resolve_headers(sources)
    return replace(_DEFAULTS, base_url=base_url, models=models, **keys, **changes)


def _scrubbed(exc: ConfigError, keys: Sequence[Secret]) -> ConfigError:
    """``exc`` without any of ``keys`` (a key pasted into the wrong field would be echoed)."""
    if redact(str(exc), keys) == str(exc):
        return exc
    value = exc.value if redact(repr(exc.value), keys) == repr(exc.value) else REDACTED
    return ConfigError(redact(exc.field, keys), value, redact(exc.allowed, keys))


def load_target(
    path: PathLike | None = None,
    cli: Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = None,
) -> Target:
    """The target from a file (or none), command-line values by ``TargetOption.dest`` and the environment.

    ``cli`` may be ``vars(args)`` or any mapping; missing or None entries mean "not given".
    """
    cli = {} if cli is None else cli
    env = os.environ if env is None else env
    file_path = None if path is None else Path(path)
    sources = _Sources(cli, env, _file_values(file_path) if file_path else {}, str(file_path))
    api_key, api_key_env = _resolve_key(sources, "api_key", "api_key_env")
    api_key_2, api_key_2_env = _resolve_key(sources, "api_key_2", "api_key_2_env")
    keys: dict[str, Any] = {
        "api_key": api_key,
        "api_key_2": api_key_2,
        "api_key_env": api_key_env,
        "api_key_2_env": api_key_2_env,
    }
    try:
        return _assemble(sources, file_path, keys)
    except ConfigError as exc:
        raise _scrubbed(exc, [k for k in (api_key, api_key_2) if k is not None]) from None


def _refuse_shared_settings(cli: Mapping[str, object], env: Mapping[str, str]) -> None:
    """With several target files, per-target settings must come from the files."""
    for field_name in _PER_TARGET_FIELDS:
        option = _OPTIONS_BY_FIELD[field_name]
        origin, value = None, None
        if cli.get(option.dest) is not None:
            origin, value = option.flag, cli[option.dest]
        elif option.env is not None and env.get(option.env):
            origin, value = f"${option.env}", env[option.env]
        if origin is not None:
            shown = REDACTED if field_name in _SECRET_FIELDS else value
            raise ConfigError(
                f"{field_name} (from {origin})",
                shown,
                "set per target: with several --target files, put it in each file",
            )


def load_targets(
    paths: Sequence[PathLike],
    cli: Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = None,
) -> list[Target]:
    """One target per file (``--target a.toml --target b.toml``), or the one from options when none."""
    cli = {} if cli is None else cli
    env = os.environ if env is None else env
    if not paths:
        return [load_target(None, cli, env)]
    if len(paths) > 1:
        _refuse_shared_settings(cli, env)
    targets = [load_target(path, cli, env) for path in paths]
    seen: dict[str, PathLike] = {}
    for path, target in zip(paths, targets, strict=True):
        if target.name in seen:
            raise ConfigError(
                f"name (in {path})",
                target.name,
                f"a name of its own ({seen[target.name]} has it too): set name = ...",
            )
        seen[target.name] = path
    return targets


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--target FILE`` (repeatable) and every ``TARGET_OPTIONS`` flag, all defaulting to None."""
    group = parser.add_argument_group(
        "target", "precedence: command line > environment > target file > defaults"
    )
    group.add_argument(
        "--target",
        dest="targets",
        action="append",
        default=[],
        metavar="FILE",
        help="target file (TOML); repeat it to compare deployments",
    )
    for option in TARGET_OPTIONS:
        group.add_argument(option.flag, **option_arguments(option))


def option_arguments(option: TargetOption) -> dict[str, Any]:
    """The keyword arguments of ``add_argument``/``addoption`` for ``option`` (default None: not given)."""
    env_hint = f" [env {option.env}]" if option.env else ""
    arguments: dict[str, Any] = {"dest": option.dest, "default": None, "help": option.help + env_hint}
    if option.kind == "flag":
        return {**arguments, "action": option.action, "const": True}
    return {**arguments, "action": option.action, "metavar": option.metavar}


def targets_from_args(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> list[Target]:
    """The targets an ``add_target_arguments`` parser was given."""
    return load_targets(args.targets, vars(args), env)
