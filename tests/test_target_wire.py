"""What real gateways need on the wire: extra headers (secret ones never shown), TLS trust, proxies,
and limits declared per key, each paced by its own."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from _hostile import Reply, Seen, scripted

from gatecheck.checks.estimate import estimate_run
from gatecheck.checks.runner import select
from gatecheck.checks.session import open_session
from gatecheck.cli import main
from gatecheck.client import Client
from gatecheck.config import Target, load_target
from gatecheck.errors import ConfigError
from gatecheck.net import proxy_for
from gatecheck.preflight import PreflightError, preflight
from gatecheck.redaction import Secret

CANARY = "tok-CANARY-header-5d1e0b"
MODELS = json.dumps(
    {
        "object": "list",
        "data": [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "x"}
            for m in ("deepseek-v4-flash", "deepseek-v4-pro", "gpt-image-2")
        ],
    }
).encode()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No GATECHECK_* or proxy variable of the user's; reports in a temporary directory."""
    for name in [n for n in os.environ if n.startswith("GATECHECK_") or n.lower().endswith("_proxy")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def models(_seen: Seen) -> Reply:
    return Reply(200, body=MODELS)


# ---------------------------------------------------------------- extra headers


def test_extra_headers_go_on_every_request_and_a_secret_one_is_never_shown(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TENANT_TOKEN", CANARY)
    with scripted(models) as server:
        args = ["conform", "--base-url", server.url, "--checks", "aux_models_list,aux_balance"]
        code = main([*args, "--header", "X-Tenant: acme", "--header", "X-Tenant-Token: $TENANT_TOKEN"])
    out = capsys.readouterr()
    assert code == 1  # /v1/balance answered with a model list: aux_balance fails, with a curl to show
    assert server.seen and all(s.headers["x-tenant"] == "acme" for s in server.seen)
    assert all(s.headers["x-tenant-token"] == CANARY for s in server.seen)
    assert "headers X-Tenant X-Tenant-Token" in out.out and "Reproduce with:" in out.out
    shown = out.out + out.err + "".join(p.read_text() for p in Path("reports").rglob("*") if p.is_file())
    assert CANARY not in shown


def test_a_headers_table_in_the_target_file(tmp_path: Path) -> None:
    path = tmp_path / "gw.toml"
    path.write_text('[headers]\nOpenAI-Organization = "org-7"\nX-Tenant-Token = "${TENANT_TOKEN}"\n')
    target = load_target(path, {"header": ["X-Extra: 1"]}, {"TENANT_TOKEN": CANARY})
    assert target.headers == (
        ("OpenAI-Organization", "org-7"),
        ("X-Tenant-Token", Secret(CANARY)),
        ("X-Extra", "1"),
    )
    assert target.redacted()["headers"]["X-Tenant-Token"] == "$TENANT_TOKEN (set)"
    assert CANARY not in json.dumps(target.redacted()) + target.describe()
    override = load_target(path, {"header": ["openai-organization: org-8"]}, {"TENANT_TOKEN": CANARY})
    assert override.headers[0] == ("openai-organization", "org-8")  # the command line wins, any case


@pytest.mark.parametrize(
    ("given", "env", "message"),
    [
        ("Authorization: Bearer x", {}, "the key goes in with --api-key"),
        ("x-api-key: $K", {"K": "v"}, "the key goes in with --api-key"),
        ("Content-Type: text/plain", {}, "gatecheck writes this one"),
        ("X-Token: $UNSET_TOKEN", {}, "$UNSET_TOKEN is empty or unset"),
        ("no colon here", {}, "'Name: value'"),
        ("Bad Name: v", {}, "a header name"),
    ],
)
def test_a_bad_header_is_a_one_line_configuration_error(
    given: str, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_target(None, {"header": [given]}, env)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_a_bad_header_on_the_command_line_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["conform", "--header", "X-Token: $UNSET_TOKEN", "--plan"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "$UNSET_TOKEN" in err


# ---------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (made with the openssl command)."""
    if shutil.which("openssl") is None:
        pytest.skip("not checked: the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *(
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=127.0.0.1",
            ),
            *("-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_tls_trust_ca_bundle_and_insecure(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with scripted(models, tls=context) as server:
        assert server.url.startswith("https://")
        with pytest.raises(PreflightError, match=r"TLS failed .*--ca-bundle / --insecure"):
            preflight(Target(base_url=server.url))
        for trusting in (
            Target(base_url=server.url, ca_bundle=str(cert)),
            Target(base_url=server.url, insecure=True),
        ):
            with Client(trusting) as client:
                assert client.send("GET", "/v1/models").status == 200


def test_a_ca_bundle_that_does_not_exist_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match=r"ca_bundle .*an existing file"):
        load_target(None, {"ca_bundle": "/nonexistent/ca.pem"}, {})


# ---------------------------------------------------------------- proxies


def test_the_standard_proxy_variables_are_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host that does not resolve is reached through the proxy the environment names."""
    with scripted(models) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        with Client(Target(base_url="http://gatecheck-behind-proxy.invalid")) as client:
            exchange = client.send("GET", "/v1/models")
        assert exchange.status == 200
        assert proxy.seen[-1].path == "http://gatecheck-behind-proxy.invalid/v1/models"
    environ = {"https_proxy": "http://p:3128", "NO_PROXY": "localhost,.corp.test,10.1.2.3:8443"}
    assert proxy_for("https://gw.example.com", environ) == "http://p:3128"
    assert proxy_for("https://gw.corp.test", environ) is None
    assert proxy_for("https://10.1.2.3:8443", environ) is None
    assert proxy_for("https://10.1.2.3", environ) == "http://p:3128"
    assert proxy_for("http://gw.example.com", environ) is None  # no http proxy named
    assert (
        proxy_for("http://x", {"HTTP_PROXY": "http://upper", "http_proxy": "http://lower"}) == "http://lower"
    )


# ---------------------------------------------------------------- limits per key


def keyed(**changes: object) -> Target:
    return Target(
        base_url="http://127.0.0.1:9",
        api_key=Secret("k1"),
        api_key_2=Secret("k2"),
        **changes,  # type: ignore[arg-type]
    )


def test_each_key_is_paced_by_its_own_limits() -> None:
    target = keyed(rpm=60, tpm=100_000, rpm_2=3, tpm_2=600)
    with open_session(target) as session:
        assert (session.pacer.rpm, session.pacer.tpm) == (60, 100_000)
        assert session.pacer_2 is not None and (session.pacer_2.rpm, session.pacer_2.tpm) == (3, 600)
        assert session.pacer_for(Secret("k2")) is session.pacer_2
        assert session.pacer_for(None) is session.pacer and session.pacer_for(Secret("k1")) is session.pacer
        assert (session.ratelimit.rpm, session.ratelimit.tpm, session.ratelimit.dedicated) == (3, 600, True)
    assert keyed(rpm=60).limits(2) == (60, 100_000)  # undeclared: the first key's


def test_a_slow_second_key_no_longer_slows_the_whole_run() -> None:
    """The issue's case: a 3-RPM second key. Declared as --rpm-2 the main key keeps its 60 RPM."""
    checks = select()
    per_key = estimate_run(checks, keyed(rpm=60, rpm_2=3), fuzz_examples=10)
    one_limit = estimate_run(checks, keyed(rpm=3), fuzz_examples=10)
    assert per_key.pacing_s < 5 * 60 < 30 * 60 < one_limit.pacing_s


def test_waits_are_announced(capsys: pytest.CaptureFixture[str]) -> None:
    """A 429 with Retry-After 2 is waited out, and the wait is said on one line."""
    answered: list[int] = []

    def limited(seen: Seen) -> Reply:
        answered.append(1)
        if len(answered) == 1:
            return Reply(429, {"content-type": "application/json", "retry-after": "2"}, b'{"error":{}}')
        return Reply(200, body=MODELS)

    with scripted(limited) as server:
        code = main(["conform", "--base-url", server.url, "--checks", "aux_models_list", "--no-preflight"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "waiting 2 s: the target's Retry-After (key 1)" in out


def test_plain_pytest_prints_the_waits_too(tmp_path: Path) -> None:
    from test_conformance_suite import run_pytest

    answered: list[int] = []

    def limited(_seen: Seen) -> Reply:
        answered.append(1)
        if len(answered) == 2:  # the preflight's request passes; the check's first one is limited
            return Reply(429, {"content-type": "application/json", "retry-after": "2"}, b'{"error":{}}')
        return Reply(200, body=MODELS)

    with scripted(limited) as server:
        done = run_pytest(tmp_path, "--base-url", server.url, "--checks", "aux_models_list")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "gatecheck: waiting 2 s: the target's Retry-After (key 1)" in done.stdout
