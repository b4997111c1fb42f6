"""The wheel ships the schemas and the suites, and works outside the clone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
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


def _venv_with_wheel(wheel: Path, where: Path) -> Path:
    """A fresh venv holding only the wheel; dependencies come from this environment's site-packages.

    A ``.pth`` line adds those directories to ``sys.path`` after the venv's own site-packages (their
    ``.pth`` files, the clone's editable hook among them, are not processed), so ``gatecheck`` is the
    wheel's and nothing is downloaded.
    """
    env_dir = where / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(site, "gatecheck-test-deps.pth").write_text("\n".join(sorted(ours)) + "\n", encoding="utf-8")
    return env_dir


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def test_wheel_contains_schemas_suites_and_marker(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "gatecheck/py.typed" in names
    assert "gatecheck/_data/schemas/openai.chat.request.json" in names
    assert "gatecheck/_data/conformance/conftest.py" in names
    assert "gatecheck/_data/loadtests/locustfile.py" in names
    assert not any(name.startswith(("tests/", "benchmarks/")) for name in names)


def test_installed_wheel_loads_schemas_outside_the_clone(wheel: Path, tmp_path: Path) -> None:
    env_dir = _venv_with_wheel(wheel, tmp_path)
    probe = (
        "import gatecheck, gatecheck.schemas as s\n"
        "store = s.default_store()\n"
        "print(gatecheck.__file__)\n"
        "print(store.directory)\n"
        "request = {'model': 'm', 'messages': [{'role': 'user', 'content': 'hi'}]}\n"
        "print(store.is_valid('openai.chat.request', request))\n"
    )
    result = subprocess.run(
        [str(env_dir / "bin" / "python"), "-c", probe],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=_clean_env(),
        check=True,
    )
    module_file, schema_dir, valid = result.stdout.split("\n")[:3]
    assert module_file.startswith(str(env_dir)), module_file
    assert schema_dir.startswith(str(env_dir)) and schema_dir.endswith("_data/schemas"), schema_dir
    assert valid == "True"


def test_installed_wheel_runs_the_conformance_suite_outside_the_clone(wheel: Path, tmp_path: Path) -> None:
    env_dir = _venv_with_wheel(wheel, tmp_path)
    command = [str(env_dir / "bin" / "gatecheck"), "conform", "-m", "aux", "-q", "--report-dir", "out"]
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=_clean_env())
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    counts = json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8"))["counts"]
    assert counts["PASS"] > 0 and counts["FAIL"] == 0, counts
    where = subprocess.run(
        [str(env_dir / "bin" / "python"), "-c", "import gatecheck; print(gatecheck.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=_clean_env(),
        check=True,
    )
    assert where.stdout.startswith(str(env_dir)), where.stdout
