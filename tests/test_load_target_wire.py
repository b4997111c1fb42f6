"""The target options of the conformance side reach the load users the same way: extra headers (a
value from the environment is a secret), TLS trust, the standard proxy variables, the second key's
own limits, the stall bound. One implementation: ``gatecheck.config`` resolves the target,
``gatecheck.net`` gives the TLS context and the proxy, ``gatecheck.load.options.http_options`` hands
them to geventhttpclient.

Option handling is tested in-process; two short locust runs (subprocesses, 127.0.0.1) prove the wire:
an https target with a CA bundle, secret and plain headers and a stall; a target behind a proxy.
"""

from __future__ import annotations

import base64
import json
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from _hostile import Reply, Seen, refused_url, scripted
from test_load_hostile import GOOD_STREAM, JSON, MODELS, SSE, api, chunk
from test_load_run import _all_output, _why, run_locust
from test_target_wire import certificate  # noqa: F401  (fixture)

from gatecheck.commands.load import _child_keys, _target_flags
from gatecheck.config import load_target
from gatecheck.errors import ConfigError
from gatecheck.load.options import LoadSettings, http_options, limits_secret, read_settings
from gatecheck.redaction import Secret

HEADER_CANARY = "tenant-CANARY-5e2b71d0"
PROXY_CANARY = "proxy-pw-CANARY-90ab"
KEY = "sk-load-wire-key"
NO_PROXY = {
    name: "" for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")
}


def settings(env: dict[str, str] | None = None, **values: Any) -> LoadSettings:
    environment = {"GATECHECK_API_KEY": KEY, **(env or {})}
    return read_settings({"host": "https://gw.example.com", **values}, environment)


# --- options, in-process -------------------------------------------------------------------------


def test_http_options_carry_the_targets_headers_tls_and_proxy(certificate: tuple[Path, Path]) -> None:  # noqa: F811
    env = {"TENANT_TOKEN": HEADER_CANARY, "https_proxy": f"http://me:{PROXY_CANARY}@127.0.0.1:3128"}
    header = ["X-Tenant-Token: $TENANT_TOKEN", "X-Team: blue"]
    options = http_options(settings(env, header=header, ca_bundle=str(certificate[0])))
    assert options["headers"]["X-Tenant-Token"] == HEADER_CANARY and options["headers"]["X-Team"] == "blue"
    context = options["ssl_context_factory"](cafile="ignored")
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname and not options["insecure"]
    assert (options["proxy_host"], options["proxy_port"]) == ("127.0.0.1", 3128)
    assert (options["proxy_user"], options["proxy_password"]) == ("me", PROXY_CANARY)
    loose = http_options(settings(insecure=True))["ssl_context_factory"]()
    assert loose.verify_mode == ssl.CERT_NONE and not loose.check_hostname
    plain = http_options(read_settings({"host": "http://127.0.0.1:9"}, {"GATECHECK_API_KEY": KEY}))
    assert "ssl_context_factory" not in plain and "proxy_host" not in plain
    bypassed = settings({"https_proxy": "http://p:3128", "no_proxy": ".example.com"})
    assert bypassed.proxy is None


@pytest.mark.parametrize("proxy", ["socks5://127.0.0.1:1080", "https://proxy.example.com:443"])
def test_a_proxy_the_load_users_cannot_use_is_refused_not_ignored(proxy: str) -> None:
    with pytest.raises(ConfigError) as raised:
        settings({"https_proxy": proxy})
    message = str(raised.value)
    assert "geventhttpclient" in message and "no_proxy" in message and "\n" not in message


def test_every_secret_of_the_run_is_known_and_none_is_described() -> None:
    env = {
        "TENANT_TOKEN": HEADER_CANARY,
        "GATECHECK_API_KEY_2": "sk-second-key",
        "https_proxy": f"http://me:{PROXY_CANARY}@127.0.0.1:3128",
    }
    run = settings(env, header=["X-Tenant-Token: $TENANT_TOKEN"], stall_seconds="2.5")
    revealed = {s.reveal() for s in run.secrets()}
    assert {KEY, HEADER_CANARY, "sk-second-key", PROXY_CANARY} <= revealed
    described = json.dumps(run.describe())
    assert not any(secret in described for secret in revealed)
    assert (
        "X-Tenant-Token: $TENANT_TOKEN (set)" in described and '"proxy": "http://127.0.0.1:3128"' in described
    )
    assert run.stall_timeout_s == 2.5


def test_the_second_key_is_probed_at_its_own_limits() -> None:
    env = {"GATECHECK_API_KEY_2": "sk-second-key"}
    run = settings(env, scenario="limits", rpm="60", tpm="100000", rpm_2="3", tpm_2="600")
    main, second = run.limits_keys
    assert (main.label, main.rpm, main.tpm) == ("main", 60, 100_000)
    assert (second.label, second.rpm, second.tpm) == ("key2", 3, 600)
    assert limits_secret(second, run, env={}).reveal() == "sk-second-key"
    assert len(settings(scenario="limits").limits_keys) == 1, "no second key: the main key alone"


def test_the_upstream_model_is_what_the_load_sends_behind_a_harness() -> None:
    assert settings(model="chat-a").model == "chat-a"
    behind = settings(model="chat-a", upstream="http://127.0.0.1:8090", upstream_model="via-harness")
    assert behind.model == "via-harness" and behind.upstream == "http://127.0.0.1:8090"


def test_gatecheck_load_hands_the_target_over_without_a_secret_on_locusts_command_line(
    tmp_path: Path,
) -> None:
    cert = tmp_path / "ca.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\n", encoding="ascii")
    cli = {
        "base_url": "https://gw.example.com",
        "header": ["X-Tenant-Token: $TENANT_TOKEN", "X-Team: blue"],
        "ca_bundle": str(cert),
        "insecure": True,
        "stall_seconds": "4",
        "rpm_2": "3",
        "upstream": "http://127.0.0.1:8090",
    }
    env = {"GATECHECK_API_KEY": KEY, "GATECHECK_API_KEY_2": "sk-second-key", "TENANT_TOKEN": HEADER_CANARY}
    target = load_target(None, cli, env)
    flags = _target_flags(target)
    assert " ".join(flags).count("--header") == 2 and "X-Tenant-Token: $TENANT_TOKEN" in flags
    assert "--insecure" in flags and flags[flags.index("--stall-seconds") + 1] == "4.0"
    assert flags[flags.index("--rpm-2") + 1] == "3" and "--tpm-2" not in flags
    assert flags[flags.index("--upstream") + 1] == "http://127.0.0.1:8090"
    assert not any(secret in " ".join(flags) for secret in (KEY, "sk-second-key", HEADER_CANARY))
    assert _child_keys(target, target.api_key or Secret("")) == {
        "GATECHECK_API_KEY": KEY,
        "GATECHECK_API_KEY_2": "sk-second-key",
    }


# --- the wire, through locust ---------------------------------------------------------------------


def test_an_https_target_with_headers_a_stall_and_a_harness_elsewhere(
    certificate: tuple[Path, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    """The CA bundle is trusted (a self-signed certificate), the headers go on every request, a
    secret one is never shown even when the target echoes it, a silent stream ends at
    ``--stall-seconds`` (not at the 30 s read timeout) and a harness that cannot be read leaves the
    overhead unmeasured with the reason."""
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    echoed = json.dumps({"error": {"code": f"bad-{HEADER_CANARY}", "message": f"tenant {HEADER_CANARY}"}})
    stall = Reply(200, SSE, [(0.0, chunk({"role": "assistant", "content": "a"})), (30.0, b"")])
    answers = [Reply(200, SSE, GOOD_STREAM), Reply(400, JSON, echoed.encode()), stall]
    count = iter(range(1_000_000))

    def answer(_seen: Seen) -> Reply:
        return answers[next(count) % 3]

    with scripted(api(answer), tls=context) as server:
        proc, summary = run_locust(
            server.url, tmp_path, "-u", "3", "-r", "3", "-t", "2s",
            "--header", "X-Tenant-Token: $TENANT_TOKEN", "--header", "X-Team: blue",
            "--ca-bundle", str(cert), "--stall-seconds", "0.4", "--read-timeout", "30",
            "--upstream", refused_url(),
            key=KEY, env={"TENANT_TOKEN": HEADER_CANARY, **NO_PROXY},
        )  # fmt: skip
        posts = [s for s in server.seen if s.method == "POST"]
    assert summary is not None, _why(proc)
    assert posts and all(s.headers["x-tenant-token"] == HEADER_CANARY for s in posts)
    assert all(s.headers["x-team"] == "blue" for s in posts)
    codes = {e["code"] for e in summary["errors"]}
    assert codes == {"stream-stalled", "bad-***"}, codes
    assert summary["requests"]["ok"] >= 1
    section = summary["upstream"]
    assert section["measured"] is False and "loopback clients only" in section["reason"]
    assert summary["run"]["options"]["headers"] == "X-Tenant-Token: $TENANT_TOKEN (set), X-Team: blue"
    assert HEADER_CANARY not in _all_output(proc, tmp_path) and KEY not in _all_output(proc, tmp_path)


def test_a_target_behind_the_proxy_the_environment_names(tmp_path: Path) -> None:
    """A host that does not resolve is load-tested through the proxy of ``http_proxy``, credentials
    included and never shown."""

    def proxy(seen: Seen) -> Reply:
        return MODELS if seen.method == "GET" else Reply(200, SSE, GOOD_STREAM)

    with scripted(proxy) as server:
        address = server.url.removeprefix("http://")
        env = {
            **NO_PROXY,
            "http_proxy": f"http://me:{PROXY_CANARY}@{address}",
            "no_proxy": "",
            "NO_PROXY": "",
        }
        proc, summary = run_locust(
            "http://gatecheck-behind-proxy.invalid",
            tmp_path,
            "-u",
            "2",
            "-r",
            "2",
            "-t",
            "1s",
            key=KEY,
            env=env,
        )
        posts = [s for s in server.seen if s.method == "POST"]
    assert summary is not None, _why(proc)
    # The run-time limit may stop a user with its request already at the proxy (one per user).
    ok = summary["requests"]["ok"]
    assert proc.returncode == 0 and 0 < ok <= len(posts) <= ok + 2, _why(proc)
    sent_to = {(urlsplit(s.path).hostname, urlsplit(s.path).path) for s in posts}  # absolute URIs
    assert sent_to == {("gatecheck-behind-proxy.invalid", "/v1/chat/completions")}
    credentials = base64.b64encode(f"me:{PROXY_CANARY}".encode()).decode()
    assert all(s.headers["proxy-authorization"] == f"Basic {credentials}" for s in posts)
    assert f"gatecheck: through the proxy http://{address}" in proc.stdout
    assert PROXY_CANARY not in _all_output(proc, tmp_path) and credentials not in _all_output(proc, tmp_path)
