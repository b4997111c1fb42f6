"""gatecheck's load test: TTFT, ITL, TPOT, throughput and rate-limit behaviour of an LLM gateway.

    GATECHECK_API_KEY=... locust -f loadtests/locustfile.py --headless --host http://127.0.0.1:8080 \
        -u 64 -r 16 -t 60s --model deepseek-v4-flash [--scenario steady|rate|ramp|limits] ...

Every option is described in docs/load-testing.md (``locust -f loadtests/locustfile.py --help``
lists them too). The users below are all imported so that locust knows them; the plugin keeps the
one the options ask for (or name classes on the command line to choose yourself).
"""

from __future__ import annotations

from typing import Any

from locust import events

from gatecheck.load import plugin
from gatecheck.load.users import (  # noqa: F401  (locust finds user classes in this module)
    ChatStreamUser,
    ChatUser,
    LimitsUser,
    MessagesStreamUser,
    MessagesUser,
    RateUser,
)


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    plugin.add_arguments(parser)


@events.init.add_listener
def _attach(environment: Any, **_kwargs: Any) -> None:
    plugin.register(environment)
