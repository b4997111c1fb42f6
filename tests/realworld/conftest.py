"""The real-world harness: LiteLLM's proxy in front of ``gatecheck serve``, and the suite run against it.

``tox -e realworld`` runs this (its venv has the pinned LiteLLM; the default ``pytest`` run skips
the tests, see test_litellm.py). Everything listens on 127.0.0.1 on free ports:

    gatecheck conform --target litellm.toml  ->  litellm --config litellm.yaml  ->  gatecheck serve
         (main key, small-limit key 2)          (static keys, OpenAI upstream)     (upstream key)
                                                   realworld-upstream         ->  gatecheck upstream
                                                                                   (the harness: the
                                                                                    upstream area)

Every key is generated per run and travels only in environment variables. Each process gets its
own session (so it is stopped as a group) and dies with pytest even when pytest is killed
(PR_SET_PDEATHSIG); on a normal end, a failure or Ctrl-C the fixtures stop it. Logs, the generated
files and the suite's reports land in ``reports/realworld-litellm/`` (git-ignored).
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

HERE = Path(__file__).resolve().parent
REPORT_DIR = HERE.parents[1] / "reports" / "realworld-litellm"
RECORDING_DIR = REPORT_DIR / "recording"
"""Every exchange of the run, one cassette per check (``gatecheck replay`` judges it again offline)."""
BIN = Path(sys.executable).parent
CHAT_MODEL = "realworld-chat"
"""LiteLLM's alias of the upstream's chat model (the suite sees only the alias)."""
REASONING_MODEL = "realworld-reasoning"
IMAGES_MODEL = "gpt-image-2"
UPSTREAM_MODEL = "realworld-upstream"
"""LiteLLM's alias of the harness (``gatecheck upstream``): the upstream area's model."""
UPSTREAM_TIMEOUT_S = 3
"""LiteLLM's timeout for the harness deployment, declared to the suite as upstream_timeout_s."""
MAIN_LIMITS = {"rpm": 100_000, "tpm": 100_000_000}
"""The main key's limits in LiteLLM: never reached (the suite paces under the declared ones)."""
KEY_2_LIMITS = {"rpm": 60, "tpm": 20_000}
"""Key 2's limits in LiteLLM, declared to the suite as the target's rpm/tpm."""
FUZZ_SEED = 1
"""Fixed, so the fuzz checks send the same requests every run and the verdict table holds."""
HARNESS_LOG = "upstream-harness"
START_TIMEOUT_S = 180.0
SUITE_TIMEOUT_S = 1200.0
TIMINGS = pytest.StashKey[dict[str, float]]()

_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when pytest dies, however it dies."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Server:
    """A started process and the URL it serves."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    name: str, command: list[str], env: dict[str, str], url: str, ready_path: str, key: str | None = None
) -> Server:
    """Start ``command`` (logging to ``<name>.log``) and wait until ``url + ready_path`` answers 200."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    log = REPORT_DIR / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    server = Server(url, process, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stop_server(server)
            pytest.fail(f"{name} exited with {process.returncode} before it was ready:\n{tail(log)}")
        try:
            if httpx.get(url + ready_path, headers=headers, timeout=2, trust_env=False).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    stop_server(server)
    pytest.fail(f"{name} was not ready after {START_TIMEOUT_S:.0f}s:\n{tail(log)}")


def stop_server(server: Server) -> None:
    """SIGTERM to the process group, SIGKILL if it is still there after 15 s."""
    for sig, wait_s in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(server.process.pid, sig)
        except ProcessLookupError:
            return
        try:
            server.process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def tail(path: Path, size: int = 3000) -> str:
    return path.read_bytes()[-size:].decode("utf-8", "replace")


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without proxies or GATECHECK_* settings of the caller's shell, plus ``extra``."""
    skip = ("GATECHECK_", "DATABASE_URL", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(skip)}
    return {**env, "NO_PROXY": "127.0.0.1,localhost", **extra}


def litellm_config(upstream_url: str, harness_url: str) -> dict[str, object]:
    """LiteLLM's config (YAML is a superset of JSON): aliases of the upstream's models, static keys,
    and the harness as the provider of ``UPSTREAM_MODEL`` (with its timeout: the area's 504 checks)."""

    def deployment(alias: str, upstream_model: str) -> dict[str, object]:
        params = {
            "model": f"openai/{upstream_model}",
            "api_base": f"{upstream_url}/v1",
            "api_key": "os.environ/REALWORLD_UPSTREAM_KEY",
        }
        return {"model_name": alias, "litellm_params": params}

    return {
        "model_list": [
            deployment(CHAT_MODEL, "deepseek-v4-flash"),
            deployment(REASONING_MODEL, "deepseek-v4-pro"),
            deployment(IMAGES_MODEL, "gpt-image-2"),
            {
                "model_name": UPSTREAM_MODEL,
                "litellm_params": {
                    "model": "openai/upstream-chat",
                    "api_base": f"{harness_url}/v1",
                    "api_key": "os.environ/REALWORLD_HARNESS_KEY",
                    "timeout": UPSTREAM_TIMEOUT_S,
                    "stream_timeout": UPSTREAM_TIMEOUT_S,
                },
            },
        ],
        # No retries: the suite must see the first answer. /v1/messages goes to the upstream's chat
        # completions (by default LiteLLM bridges it to /v1/responses, which our gateway lacks).
        "litellm_settings": {"num_retries": 0, "use_chat_completions_url_for_anthropic_messages": True},
        "router_settings": {"num_retries": 0},
        "general_settings": {"custom_auth": "litellm_auth.user_api_key_auth"},
    }


def target_toml(base_url: str, harness_url: str) -> str:
    """The suite's target file: what LiteLLM offers in front of our gateway, key 2's limits, the harness."""
    return f"""\
name = "litellm"
base_url = "{base_url}"
profile = "openai"            # LiteLLM speaks OpenAI's error body and rate-limit header dialect
rpm = {KEY_2_LIMITS["rpm"]}
tpm = {KEY_2_LIMITS["tpm"]}
max_requests = 500
upstream = "{harness_url}"    # the upstream area: LiteLLM's {UPSTREAM_MODEL} calls this harness
upstream_model = "{UPSTREAM_MODEL}"
upstream_timeout_s = {UPSTREAM_TIMEOUT_S}  # its litellm_params timeout and stream_timeout
retries = 0                   # num_retries 0

[models]
chat = "{CHAT_MODEL}"
reasoning = "{REASONING_MODEL}"
images = "{IMAGES_MODEL}"

[capabilities]
search = false                # /v1/search/completions and /v1/balance are not LiteLLM routes
balance = false
"""


@pytest.fixture(scope="session")
def keys() -> dict[str, str]:
    """Fresh keys for this run: never written to a file, never printed."""
    return {
        "upstream": secrets.token_hex(16),
        "main": secrets.token_hex(16),
        "second": secrets.token_hex(16),
        "master": "sk-" + secrets.token_hex(32),
        "harness": "gcu-canary-" + secrets.token_hex(16),
    }


@pytest.fixture(scope="session")
def timings(request: pytest.FixtureRequest) -> dict[str, float]:
    return request.config.stash.setdefault(TIMINGS, {})


@pytest.fixture(scope="session")
def upstream(keys: dict[str, str]) -> Iterator[Server]:
    """``gatecheck serve``: LiteLLM's OpenAI upstream, with limits nothing reaches."""
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [str(BIN / "gatecheck"), "serve", "--port", str(port), "--rpm", "1000000000"]
    command += ["--tpm", "1000000000000", "--itl-ms", "1"]  # 1 ms per token: streams really stream
    env = clean_env(GATECHECK_SERVE_API_KEYS=keys["upstream"])
    server = start_server(
        "upstream", command, env, f"http://127.0.0.1:{port}", "/v1/models", keys["upstream"]
    )
    yield server
    stop_server(server)


@pytest.fixture(scope="session")
def harness(keys: dict[str, str]) -> Iterator[Server]:
    """``gatecheck upstream``: the scripted provider behind LiteLLM's ``UPSTREAM_MODEL``.

    It prints its key on its second line by design (the gateway's operator puts it in the config):
    its own log is the one file allowed to hold that key.
    """
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [str(BIN / "gatecheck"), "upstream", "--port", str(port)]
    env = clean_env(GATECHECK_UPSTREAM_API_KEY=keys["harness"])
    server = start_server(HARNESS_LOG, command, env, f"http://127.0.0.1:{port}", "/_gatecheck/info")
    yield server
    stop_server(server)


@pytest.fixture(scope="session")
def litellm_proxy(
    upstream: Server, harness: Server, keys: dict[str, str], timings: dict[str, float]
) -> Iterator[Server]:
    """The LiteLLM proxy, offline, without a database, with the two static keys."""
    config = REPORT_DIR / "litellm.yaml"
    config.write_text(json.dumps(litellm_config(upstream.url, harness.url), indent=2), encoding="utf-8")
    spec = importlib.util.find_spec("litellm")
    assert spec is not None and spec.submodule_search_locations
    tokenizers = Path(spec.submodule_search_locations[0]) / "litellm_core_utils" / "tokenizers"
    env = clean_env(
        LITELLM_MASTER_KEY=keys["master"],  # it refuses to start without one
        LITELLM_LOCAL_MODEL_COST_MAP="True",  # else it fetches the cost map at start-up
        LITELLM_TELEMETRY="False",
        TIKTOKEN_CACHE_DIR=str(tokenizers),  # the tokenizer files in the wheel: no download
        PYTHONPATH=str(HERE),  # finds litellm_auth.py
        REALWORLD_UPSTREAM_KEY=keys["upstream"],
        REALWORLD_HARNESS_KEY=keys["harness"],
        REALWORLD_KEYS=json.dumps({keys["main"]: MAIN_LIMITS, keys["second"]: KEY_2_LIMITS}),
    )
    port = free_port()
    command = [str(BIN / "litellm"), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    started = time.monotonic()
    server = start_server(
        "litellm", [*command, "--num_workers", "1"], env, f"http://127.0.0.1:{port}", "/health/liveliness"
    )
    timings["litellm_start_s"] = time.monotonic() - started
    yield server
    stop_server(server)


@dataclass
class ConformanceRun:
    """What ``gatecheck conform`` left: its exit code, output and reports."""

    exit_code: int
    output: str
    results: dict[str, object]
    report_dir: Path


@pytest.fixture(scope="session")
def conformance_run(
    litellm_proxy: Server, harness: Server, keys: dict[str, str], timings: dict[str, float]
) -> ConformanceRun:
    """The whole suite against LiteLLM, as a user runs it (results.json, junit.xml, matrices)."""
    target = REPORT_DIR / "litellm.toml"
    target.write_text(target_toml(litellm_proxy.url, harness.url), encoding="utf-8")
    report_dir = REPORT_DIR / "conformance"
    shutil.rmtree(report_dir, ignore_errors=True)  # never read an earlier run's results
    shutil.rmtree(RECORDING_DIR, ignore_errors=True)
    command = [str(BIN / "gatecheck"), "conform", "--target", str(target), "--report-dir", str(report_dir)]
    command += ["--record", str(RECORDING_DIR)]  # tests/recordings/litellm is a copy of RECORDING_DIR/litellm
    env = clean_env(GATECHECK_API_KEY=keys["main"], GATECHECK_API_KEY_2=keys["second"])
    started = time.monotonic()
    run = subprocess.run(
        [*command, "--fuzz-seed", str(FUZZ_SEED)],
        env=env,
        capture_output=True,
        text=True,
        timeout=SUITE_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )
    timings["suite_s"] = time.monotonic() - started
    timings["upstream_area_s"] = area_seconds(report_dir / "results.json")
    output = run.stdout + run.stderr
    (REPORT_DIR / "conform.log").write_text(output, encoding="utf-8")
    results_file = report_dir / "results.json"
    assert results_file.is_file(), f"no results (exit {run.returncode}):\n{output[-3000:]}"
    results = json.loads(results_file.read_text(encoding="utf-8"))
    return ConformanceRun(run.returncode, output, results, report_dir)


def area_seconds(results_file: Path) -> float:
    """How long the upstream area's checks took in a results file (0 when it holds none)."""
    if not results_file.is_file():
        return 0.0
    results = json.loads(results_file.read_text(encoding="utf-8"))["results"]
    return float(sum(r["duration_s"] for r in results if r["area"] == "upstream"))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """How long LiteLLM took to start and the suite to run (the CI budget is judged from these)."""
    measured = config.stash.get(TIMINGS, {})
    if measured:
        figures = ", ".join(f"{name} {seconds:.1f}" for name, seconds in measured.items())
        terminalreporter.write_line(f"realworld timings (s): {figures}; reports in {REPORT_DIR}")
