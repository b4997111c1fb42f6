"""The load test's options: one table, read into one typed :class:`LoadSettings`.

The locust plugin adds ``LOAD_OPTIONS`` (and a subset of ``gatecheck.config.TARGET_OPTIONS``) to
locust's own parser, so they work on the command line, in locust config files and in the web UI;
``gatecheck load`` adds the same flags to its parser and forwards the ones given. No locust here.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeAlias, cast
from urllib.parse import unquote, urlsplit, urlunsplit

from gatecheck.config import TARGET_OPTIONS, Target, TargetOption, load_target
from gatecheck.errors import ConfigError
from gatecheck.load.limits import PROBE_KINDS, LimitKey, ProbeKind, ProbePlan, parse_limits_key, plan_probes
from gatecheck.load.slo import SloSpec, load_slo
from gatecheck.load.workload import (
    ARRIVALS,
    DIALECTS,
    Arrival,
    Dialect,
    LengthDist,
    Messages,
    RampPlan,
    load_dataset,
    parse_length,
)
from gatecheck.redaction import Secret

Scenario: TypeAlias = Literal["steady", "rate", "ramp", "limits"]
SCENARIOS: tuple[Scenario, ...] = ("steady", "rate", "ramp", "limits")
ON_OFF = ("on", "off")
MAIN_KEY_LABEL = "main"
DEFAULT_CONFORMANCE_SAMPLE = "0.02"
"""Share of streams the assembler's rules check by default (benchmarks/load_capacity.py: a checked
stream costs the load process about 6-7 times an unchecked one, every stream checked leaves ~15% of
the capacity; one stream in fifty costs ~10% and keeps gatecheck above the minimal locust user)."""
PARENT_PID_ENV = "GATECHECK_LOAD_PARENT_PID"
"""Set by ``gatecheck load`` for its locust child: the plugin quits the run when that process is gone."""
MAX_USERS = 100_000
MAX_SPAWN_RATE = 10_000.0
MAX_RATE = 100_000.0
MAX_WINDOW_S = 3600.0
MAX_RUN_S = 7 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class LoadOption:
    """One load-test option: flag, default (as a string, the way config files give it), help."""

    flag: str
    default: str | None
    help: str
    choices: tuple[str, ...] | None = None
    multiple: bool = False
    metavar: str | None = None

    @property
    def dest(self) -> str:
        """The argparse destination."""
        return self.flag.removeprefix("--").replace("-", "_")


LOAD_OPTIONS: tuple[LoadOption, ...] = (
    LoadOption(
        "--scenario",
        "steady",
        "steady: fixed concurrency; rate: open-model arrivals; "
        "ramp: stepped concurrency up to saturation; limits: RPM/TPM enforcement verdict",
        SCENARIOS,
    ),
    LoadOption("--dialect", "openai", "openai: /v1/chat/completions; anthropic: /v1/messages", DIALECTS),
    LoadOption("--stream", "on", "ask for streamed answers", ON_OFF),
    LoadOption(
        "--stream-usage", "on", "ask for usage in the last chunk (stream_options.include_usage)", ON_OFF
    ),
    LoadOption("--ignore-eos", "off", "send vLLM's ignore_eos: true so answers run to max_tokens", ON_OFF),
    LoadOption(
        "--prompt-tokens",
        "128",
        "prompt length in tokens: N, MEAN:SPREAD (normal) or uniform:MEAN:SPREAD",
        metavar="SPEC",
    ),
    LoadOption(
        "--output-tokens",
        "64",
        "output length (max_tokens): N, MEAN:SPREAD or uniform:MEAN:SPREAD",
        metavar="SPEC",
    ),
    LoadOption(
        "--dataset",
        None,
        "JSONL file of conversations (a message list per line) instead of generated prompts",
        metavar="FILE",
    ),
    LoadOption(
        "--seed", "0", "seed of every random choice (lengths, prompts, Poisson arrivals)", metavar="N"
    ),
    LoadOption("--request-rate", "1", "rate scenario: requests per second over all users", metavar="R"),
    LoadOption("--arrival", "constant", "rate scenario: arrival process", ARRIVALS),
    LoadOption(
        "--max-in-flight",
        "256",
        "rate and limits scenarios: requests in flight per user at most",
        metavar="N",
    ),
    LoadOption("--ramp-start", "1", "ramp scenario: users in the first step", metavar="N"),
    LoadOption("--ramp-step", "4", "ramp scenario: users added per step", metavar="N"),
    LoadOption("--ramp-step-seconds", "30", "ramp scenario: seconds per step", metavar="S"),
    LoadOption("--ramp-max", "64", "ramp scenario: users in the last step", metavar="N"),
    LoadOption(
        "--window-seconds",
        "60",
        "limits scenario: the rate-limit window (a minute; shorter for tests)",
        metavar="S",
    ),
    LoadOption(
        "--limits-key",
        None,
        "limits scenario: LABEL=ENV_VAR:RPM:TPM, repeatable (default: the main key with --rpm/--tpm)",
        multiple=True,
        metavar="SPEC",
    ),
    LoadOption(
        "--limits-overdrive", "2", "limits scenario: offered load as a multiple of the limit", metavar="X"
    ),
    LoadOption("--limits-windows", "2", "limits scenario: windows in the sustain phase", metavar="N"),
    LoadOption("--limits-probes", "both", "limits scenario: which limits to probe", ("both", "rpm", "tpm")),
    LoadOption(
        "--limits-tolerance", "0.1", "limits scenario: allowed relative deviation from the limit", metavar="F"
    ),
    LoadOption(
        "--warmup",
        "0",
        "seconds at the start whose requests are sent but left out of every statistic",
        metavar="S",
    ),
    LoadOption(
        "--conformance-sample",
        DEFAULT_CONFORMANCE_SAMPLE,
        "share of streams checked against the protocol rules under load (0 to 1; 1 = every stream)",
        metavar="F",
    ),
    LoadOption(
        "--preflight",
        "on",
        "one cheap request per key before the run: a dead URL or rejected key stops it (exit 2)",
        ON_OFF,
    ),
    LoadOption(
        "--slo", None, "SLO file (TOML): the run exits 1 when an objective is violated", metavar="FILE"
    ),
    LoadOption(
        "--baseline",
        None,
        "earlier summary JSON: flag (and exit 1 on) regressions beyond the threshold",
        metavar="FILE",
    ),
    LoadOption("--regression-threshold", "0.1", "relative change counted as a regression", metavar="F"),
    LoadOption(
        "--report-dir", "reports", "where the summary, the plots page and locust's files go", metavar="DIR"
    ),
    LoadOption("--plots", "on", "write the HTML page with plots (matplotlib adds 1-2 s at the end)", ON_OFF),
    LoadOption(
        "--run-name",
        None,
        "file name stem of this run's reports (default load-<scenario>-<time>)",
        metavar="NAME",
    ),
)
"""Every load-test option, in help order."""

LOCUST_TARGET_FIELDS = (
    "models.chat",
    "api_key",
    "api_key_2",
    "api_key_env",
    "api_key_2_env",
    "auth",
    "rpm",
    "tpm",
    "rpm_2",
    "tpm_2",
    "max_requests",
    "max_output_tokens",
    "connect_timeout",
    "read_timeout",
    "total_timeout",
    "max_response_bytes",
    "stall_seconds",
    "headers",
    "ca_bundle",
    "insecure",
    "upstream",
    "upstream_model",
)
"""The target options that also make sense on a locust command line (the host is locust's ``--host``;
``--profile`` is locust's own: the target file or ``$GATECHECK_PROFILE`` sets gatecheck's)."""
SECOND_KEY_LABEL = "key2"
PROXY_SCHEMES = ("http",)
"""Proxies the load users can go through: geventhttpclient speaks plain HTTP to its proxy (absolute
URIs for http targets, CONNECT for https ones); an https:// or socks proxy is refused at start."""


def target_options() -> list[TargetOption]:
    """The ``TARGET_OPTIONS`` rows the locust plugin offers."""
    return [o for o in TARGET_OPTIONS if o.field in LOCUST_TARGET_FIELDS]


@dataclass(frozen=True, slots=True)
class LoadSettings:
    """Everything a load run needs, validated; ``api_key`` stays a ``Secret`` until it hits the wire."""

    host: str
    target: Target
    """The target as the run sees it (``base_url`` is the host): limits, budget, timeouts, keys,
    extra headers, TLS trust, the upstream harness."""
    scenario: Scenario
    model: str
    """The chat model, or the one that routes to the upstream harness (``upstream_model``)."""
    dialect: Dialect
    stream: bool
    include_usage: bool
    ignore_eos: bool
    prompt_tokens: LengthDist
    output_tokens: LengthDist
    dataset_path: str | None
    dataset: tuple[Messages, ...]
    seed: int
    secret: Secret
    auth: str
    rpm: int
    tpm: int
    connect_timeout_s: float
    read_timeout_s: float
    total_timeout_s: float
    stall_timeout_s: float
    """A stream that sends no byte this long after its headers ends as ``stream-stalled``."""
    proxy: str | None
    """The proxy the standard variables give for the host (``gatecheck.net.proxy_for``), checked."""
    request_rate: float
    arrival: Arrival
    max_in_flight: int
    ramp: RampPlan
    window_s: float
    limits_keys: tuple[LimitKey, ...]
    overdrive: float
    windows: int
    tolerance: float
    limits_kinds: tuple[ProbeKind, ...]
    slo: SloSpec | None
    baseline_path: str | None
    regression_threshold: float
    report_dir: Path
    plots: bool
    run_name: str | None
    warmup_s: float
    conformance_sample: float
    preflight: bool
    reasoning_field: str

    @property
    def budget(self) -> int:
        """The most requests the run may send (``--budget-requests``)."""
        return self.target.max_requests

    @property
    def max_output_tokens(self) -> int:
        """The largest ``max_tokens`` a request may ask for (``--max-output-tokens``)."""
        return self.target.max_output_tokens

    @property
    def max_response_bytes(self) -> int:
        """The largest response read (``--max-response-bytes``); the connection is closed beyond it."""
        return self.target.max_response_bytes

    def probe_plans(self, key: LimitKey) -> list[ProbePlan]:
        """The rate-limit probes of one key, as the options ask."""
        return plan_probes(
            key, self.window_s, overdrive=self.overdrive, windows=self.windows, kinds=self.limits_kinds
        )

    @property
    def api_key(self) -> str:
        """The key itself, for the request header only."""
        return self.secret.reveal()

    @property
    def upstream(self) -> str | None:
        """The upstream harness behind the gateway (``--upstream``): gateway overhead is measured."""
        return self.target.upstream

    def secrets(self) -> list[Secret]:
        """Everything of the run that must never be shown: keys, header values from the environment,
        the proxy's password."""
        found = [self.secret, *self.target.header_secrets]
        if self.target.api_key_2 is not None:
            found.append(self.target.api_key_2)
        password = urlsplit(self.proxy).password if self.proxy else None
        if password:
            found.append(Secret(unquote(password), "proxy password"))
        return found

    def describe(self) -> dict[str, Any]:
        """Non-secret settings for the summary's ``run.options``."""
        return {
            "request_rate": self.request_rate if self.scenario == "rate" else None,
            "arrival": self.arrival if self.scenario == "rate" else None,
            "max_in_flight": self.max_in_flight,
            "ramp": f"{self.ramp.start}+{self.ramp.step}/{self.ramp.step_s:g}s..{self.ramp.max_users}"
            if self.scenario == "ramp"
            else None,
            "window_s": self.window_s if self.scenario == "limits" else None,
            "limits_keys": ", ".join(f"{k.label} {k.rpm} rpm {k.tpm} tpm" for k in self.limits_keys)
            if self.scenario == "limits"
            else None,
            "include_usage": self.include_usage,
            "ignore_eos": self.ignore_eos,
            "auth": self.auth,
            "budget_requests": self.budget,
            "max_output_tokens": self.max_output_tokens,
            "max_response_bytes": self.max_response_bytes,
            "warmup_s": self.warmup_s,
            "conformance_sample": self.conformance_sample,
            "stall_s": self.stall_timeout_s,
            "headers": ", ".join(f"{n}: {v}" for n, v in self.target.header_state().items()) or None,
            "tls": "not verified" if self.target.insecure else self.target.ca_bundle,
            "proxy": public_url(self.proxy) if self.proxy else None,
            "upstream": public_url(self.upstream) if self.upstream else None,
        }


def _value(ns: Mapping[str, Any], option: LoadOption) -> Any:
    value = ns.get(option.dest)
    return option.default if value is None else value


def _number(ns: Mapping[str, Any], flag: str, kind: type, low: float, high: float | None = None) -> Any:
    option = _BY_FLAG[flag]
    raw = _value(ns, option)
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        value = None
    if value is None or value < low or (high is not None and value > high) or value != value:
        bound = f"from {low:g}" + (f" to {high:g}" if high is not None else "")
        raise ConfigError(flag, raw, f"a{'n integer' if kind is int else ' number'} {bound}")
    return value


def _choice(ns: Mapping[str, Any], flag: str) -> str:
    option = _BY_FLAG[flag]
    value = str(_value(ns, option))
    if option.choices and value not in option.choices:
        raise ConfigError(flag, value, " or ".join(option.choices))
    return value


def _limits_keys(ns: Mapping[str, Any], target: Target) -> tuple[LimitKey, ...]:
    """``--limits-key`` as given; by default the main key at its limits, and the second key at its
    own (``rpm_2``/``tpm_2``) when there is one."""
    raw = ns.get("limits_key") or []
    specs = [raw] if isinstance(raw, str) else list(raw)
    if not specs:
        main = LimitKey(MAIN_KEY_LABEL, None, *target.limits(1))
        if target.api_key_2 is None:
            return (main,)
        return main, LimitKey(SECOND_KEY_LABEL, target.api_key_2_env, *target.limits(2))
    keys = tuple(parse_limits_key(spec) for spec in specs)
    labels = [k.label for k in keys]
    if len(set(labels)) != len(labels):
        raise ConfigError("--limits-key", ", ".join(labels), "a distinct label per key")
    return keys


def _limits_kinds(choice: str) -> tuple[ProbeKind, ...]:
    return PROBE_KINDS if choice == "both" else tuple(k for k in PROBE_KINDS if k == choice)


def _path_or_none(ns: Mapping[str, Any], flag: str) -> str | None:
    value = _value(ns, _BY_FLAG[flag])
    return str(value) if value else None


def _capped_length(values: Mapping[str, Any], flag: str, cap: int) -> LengthDist:
    """A length spec whose mean is within ``--max-output-tokens`` (samples above it are clipped)."""
    length = parse_length(str(_value(values, _BY_FLAG[flag])), flag)
    if length.mean > cap:
        raise ConfigError(flag, str(length), f"a mean of at most --max-output-tokens {cap} (or raise that)")
    return length


def check_run_shape(users: object, spawn_rate: object, processes: object, run_time_s: object = None) -> None:
    """Locust's own run options, checked before locust forks or spawns anything (one ConfigError);
    None is "not given"."""
    if users is not None and (
        not isinstance(users, int) or isinstance(users, bool) or not 1 <= users <= MAX_USERS
    ):
        raise ConfigError("-u/--users", users, f"an integer from 1 to {MAX_USERS}")
    if spawn_rate is not None and (
        not isinstance(spawn_rate, int | float) or not 0 < spawn_rate <= MAX_SPAWN_RATE
    ):
        raise ConfigError("-r/--spawn-rate", spawn_rate, f"a number above 0 and at most {MAX_SPAWN_RATE:g}")
    most = max_processes()
    if processes not in (None, 0, -1) and (
        not isinstance(processes, int) or isinstance(processes, bool) or not 1 <= processes <= most
    ):
        raise ConfigError("--processes", processes, f"-1 (one per core) or an integer from 1 to {most}")
    if run_time_s is not None and (
        not isinstance(run_time_s, int | float) or not 0 < run_time_s <= MAX_RUN_S
    ):
        raise ConfigError("-t/--run-time", run_time_s, "a duration above 0 and at most 7 days")


def max_processes() -> int:
    """The most locust worker processes one machine may run: twice its cores."""
    return 2 * (os.cpu_count() or 1)


def read_settings(
    ns: argparse.Namespace | Mapping[str, Any], env: Mapping[str, str] | None = None
) -> LoadSettings:
    """Validate parsed options (locust's or ours) into settings; one ConfigError for the first bad one."""
    values: Mapping[str, Any] = vars(ns) if isinstance(ns, argparse.Namespace) else ns
    env = os.environ if env is None else env
    host = values.get("host")
    if not host:
        raise ConfigError("--host", host, "the gateway's base URL, e.g. http://127.0.0.1:8080")
    cli = {o.dest: values.get(o.dest) for o in target_options()}
    target = load_target(values.get("target") or None, cli, env)
    if target.api_key is None:
        raise ConfigError("api_key", "(not set)", f"a key in ${target.api_key_env} or --api-key")
    dataset_path = _path_or_none(values, "--dataset")
    slo_path = _path_or_none(values, "--slo")
    ramp = RampPlan(
        _number(values, "--ramp-start", int, 1, MAX_USERS),
        _number(values, "--ramp-step", int, 1, MAX_USERS),
        _number(values, "--ramp-step-seconds", float, 0.001, MAX_RUN_S),
        _number(values, "--ramp-max", int, 1, MAX_USERS),
    )
    from gatecheck.profiles import load_profile

    host = str(host).rstrip("/")
    return LoadSettings(
        host=host,
        target=dataclasses.replace(target, base_url=host),
        scenario=cast(Scenario, _choice(values, "--scenario")),
        model=(target.upstream_model or target.models.chat) if target.upstream else target.models.chat,
        dialect=cast(Dialect, _choice(values, "--dialect")),
        stream=_choice(values, "--stream") == "on",
        include_usage=_choice(values, "--stream-usage") == "on",
        ignore_eos=_choice(values, "--ignore-eos") == "on",
        prompt_tokens=parse_length(str(_value(values, _BY_FLAG["--prompt-tokens"])), "--prompt-tokens"),
        output_tokens=_capped_length(values, "--output-tokens", target.max_output_tokens),
        dataset_path=dataset_path,
        dataset=tuple(load_dataset(Path(dataset_path))) if dataset_path else (),
        seed=_number(values, "--seed", int, 0),
        secret=target.api_key,
        auth=target.auth,
        rpm=target.rpm,
        tpm=target.tpm,
        connect_timeout_s=target.connect_timeout,
        read_timeout_s=target.read_timeout,
        total_timeout_s=target.total_timeout,
        stall_timeout_s=target.stall_seconds,
        proxy=load_proxy(host, env),
        request_rate=_number(values, "--request-rate", float, 0.001, MAX_RATE),
        arrival=cast(Arrival, _choice(values, "--arrival")),
        max_in_flight=_number(values, "--max-in-flight", int, 1, 100_000),
        ramp=ramp,
        window_s=_number(values, "--window-seconds", float, 0.01, MAX_WINDOW_S),
        limits_keys=_limits_keys(values, target),
        overdrive=_number(values, "--limits-overdrive", float, 1.01, 100),
        windows=_number(values, "--limits-windows", int, 1, 1000),
        tolerance=_number(values, "--limits-tolerance", float, 0, 10),
        limits_kinds=_limits_kinds(_choice(values, "--limits-probes")),
        slo=load_slo(Path(slo_path)) if slo_path else None,
        baseline_path=_path_or_none(values, "--baseline"),
        regression_threshold=_number(values, "--regression-threshold", float, 0, 100),
        report_dir=Path(str(_value(values, _BY_FLAG["--report-dir"]))),
        plots=_choice(values, "--plots") == "on",
        run_name=_path_or_none(values, "--run-name"),
        warmup_s=_number(values, "--warmup", float, 0, MAX_RUN_S),
        conformance_sample=_number(values, "--conformance-sample", float, 0, 1),
        preflight=_choice(values, "--preflight") == "on",
        reasoning_field=load_profile(target.profile).reasoning_field,
    )


def public_url(url: str) -> str:
    """``url`` without user info, query or fragment: what a report may show of a base URL."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def load_proxy(host: str, env: Mapping[str, str]) -> str | None:
    """The proxy for ``host`` (``gatecheck.net.proxy_for``, shared with the conformance client); one
    the load users cannot go through is refused rather than ignored."""
    from gatecheck.net import proxy_for

    proxy = proxy_for(host, env)
    if proxy is None:
        return None
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if parts.scheme not in PROXY_SCHEMES or not parts.hostname:
        raise ConfigError(
            "proxy (from the *_proxy variables)",
            public_url(proxy),
            "an http://host:port proxy: the load users (geventhttpclient) cannot go through "
            f"{parts.scheme or 'this'} proxies; unset the variable or name the host in no_proxy",
        )
    return urlunsplit(parts)


def http_options(settings: LoadSettings) -> dict[str, Any]:
    """The geventhttpclient ``HTTPClient`` keywords for the target: the extra headers, the TLS context
    of ``gatecheck.net.ssl_context`` (the conformance client's) and the proxy. Make it once per
    process: the users share the TLS context."""
    target = settings.target
    extra = {name: value.reveal() if isinstance(value, Secret) else value for name, value in target.headers}
    options: dict[str, Any] = {
        "connection_timeout": settings.connect_timeout_s,
        "network_timeout": settings.read_timeout_s,
        "headers": {"Accept-Encoding": "identity", "Content-Type": "application/json", **extra},
    }
    if urlsplit(settings.host).scheme == "https":
        from gatecheck.net import ssl_context

        context = ssl_context(target)

        def shared_context(**_ignored: object) -> ssl.SSLContext:
            return context

        options.update(ssl_context_factory=shared_context, insecure=target.insecure)
    if settings.proxy is not None:
        parts = urlsplit(settings.proxy)
        options.update(proxy_host=parts.hostname, proxy_port=parts.port or 80)
        if parts.username is not None or parts.password is not None:
            options.update(
                proxy_user=unquote(parts.username or ""), proxy_password=unquote(parts.password or "")
            )
    return options


def limits_secret(key: LimitKey, settings: LoadSettings, env: Mapping[str, str] | None = None) -> Secret:
    """The key a ``--limits-key`` names (its environment variable), the second key, or the main key."""
    env = os.environ if env is None else env
    if key.key_env is None:
        return settings.secret
    second = settings.target.api_key_2
    if second is not None and key.key_env == settings.target.api_key_2_env:
        return second
    value = env.get(key.key_env)
    if not value:
        raise ConfigError(
            f"--limits-key {key.label}", f"${key.key_env}", "an environment variable holding the key"
        )
    return Secret(value, f"${key.key_env}")


def forwarded_arguments(values: Mapping[str, Any], options: Sequence[LoadOption] = LOAD_OPTIONS) -> list[str]:
    """Command-line arguments for the options a user gave (value not None), for a locust subprocess."""
    argv: list[str] = []
    for option in options:
        value = values.get(option.dest)
        if value is None:
            continue
        for item in value if option.multiple and isinstance(value, list) else [value]:
            argv += [option.flag, str(item)]
    return argv


_BY_FLAG = {o.flag: o for o in LOAD_OPTIONS}
