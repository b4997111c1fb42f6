"""The public surface: every name in ``gatecheck.__all__`` exists, and importing it stays light."""

from __future__ import annotations

import subprocess
import sys

import gatecheck


def test_every_public_name_resolves() -> None:
    for name in gatecheck.__all__:
        assert getattr(gatecheck, name) is not None, name


def test_unknown_name_is_an_attribute_error() -> None:
    try:
        gatecheck.no_such_name  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_public_surface_and_cli_never_import_locust_or_gevent() -> None:
    probe = (
        "import sys, gatecheck\n"
        "for name in gatecheck.__all__: getattr(gatecheck, name)\n"
        "import gatecheck.cli, gatecheck.pytest_plugin\n"
        "import gatecheck.commands.serve, gatecheck.commands.conform, gatecheck.commands.demo\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('locust', 'gevent')))\n"
    )
    command = [sys.executable, "-c", probe]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stdout
