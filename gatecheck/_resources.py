"""Where the data directories are: inside the wheel (gatecheck/_data/) or in a clone (repo root)."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """Return the directory ``schemas``, ``conformance`` or ``loadtests``, installed or from a clone."""
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"gatecheck data directory {name!r} not found (looked in the package and the clone)"
    )
