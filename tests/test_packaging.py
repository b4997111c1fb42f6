"""The wheel ships the schemas and the suites, and works outside the clone."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("gatecheck-*.whl")
    return built


def test_wheel_contains_schemas_suites_and_marker(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "gatecheck/py.typed" in names
    assert "gatecheck/_data/schemas/openai.chat.request.json" in names
    assert "gatecheck/_data/conformance/conftest.py" in names
    assert "gatecheck/_data/loadtests/locustfile.py" in names
    assert not any(name.startswith(("tests/", "benchmarks/")) for name in names)


def test_installed_wheel_loads_schemas_outside_the_clone(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    # System site-packages provide the dependencies (no network); the wheel itself goes in the venv,
    # which comes first on sys.path.
    venv.EnvBuilder(system_site_packages=True, with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    probe = (
        "import gatecheck, gatecheck.schemas as s\n"
        "store = s.default_store()\n"
        "print(gatecheck.__file__)\n"
        "print(store.directory)\n"
        "request = {'model': 'm', 'messages': [{'role': 'user', 'content': 'hi'}]}\n"
        "print(store.is_valid('openai.chat.request', request))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [str(python), "-c", probe],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=True,
    )
    module_file, schema_dir, valid = result.stdout.split("\n")[:3]
    assert module_file.startswith(str(env_dir)), module_file
    assert schema_dir.startswith(str(env_dir)) and schema_dir.endswith("_data/schemas"), schema_dir
    assert valid == "True"
