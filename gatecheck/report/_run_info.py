"""What the report header says about a run, read from the caller's ``run_info`` mapping.

Only names, base URLs, profiles and timestamps are read from targets (never a key field), and base
URLs lose any user info and query string, where credentials sometimes hide.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import PurePath
from urllib.parse import urlsplit, urlunsplit

import gatecheck

RUN_INFO_KEYS = ("started", "finished", "profile", "targets", "secrets", "interrupted")


@dataclass(frozen=True, slots=True)
class TargetInfo:
    """A matrix column: the target's name, where it lives and the profile it was checked under.

    ``declared`` is False for a target only the results name (the caller did not describe it).
    """

    name: str
    base_url: str | None = None
    profile: str | None = None
    declared: bool = True
    expected_failures: str | None = None
    """The expected-failures file applied to the target's results, if any."""

    @property
    def no_url_reason(self) -> str:
        """What a page shows instead of a missing base URL."""
        return "embedded reference gateway" if self.declared else "not given"


@dataclass(frozen=True, slots=True)
class RunInfo:
    """The header of every report: tool version, when the run happened, what it ran against."""

    tool_version: str
    started: str | None
    finished: str
    profile: str | None
    targets: tuple[TargetInfo, ...]
    interrupted: bool = False
    """The run was stopped (Ctrl-C) before every check had run: the results are partial."""


def parse_run_info(run_info: Mapping[str, object], result_targets: Iterable[str]) -> RunInfo:
    """The header for ``run_info``; targets named only by results are appended in order of appearance."""
    unknown = sorted(set(run_info) - set(RUN_INFO_KEYS))
    if unknown:
        raise ValueError(f"unknown run_info keys {unknown}; known: {', '.join(RUN_INFO_KEYS)}")
    declared = _targets(run_info.get("targets", ()))
    targets = _with_result_targets(declared, result_targets)
    profile = _optional_str(run_info.get("profile"), "profile")
    finished = _timestamp(run_info.get("finished"), "finished")
    return RunInfo(
        tool_version=gatecheck.__version__,
        started=_timestamp(run_info.get("started"), "started"),
        finished=finished if finished is not None else _iso(datetime.now(UTC)),
        profile=profile if profile is not None else _shared_profile(targets),
        targets=tuple(replace(t, profile=t.profile or profile) for t in targets),
        interrupted=_flag(run_info.get("interrupted", False)),
    )


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"run_info['interrupted'] must be a bool, not {type(value).__name__}")
    return value


def safe_url(url: str) -> str:
    """``url`` without user info, query or fragment (``https://u:p@h/v1?key=x`` -> ``https://h/v1``)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _targets(value: object) -> list[TargetInfo]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise TypeError("run_info['targets'] must be a sequence of mappings or Target objects")
    return [_target(item) for item in value]


def target_field(item: object, name: str) -> object:
    """Field ``name`` of a run_info target: a mapping's item or an object's attribute (``config.Target``)."""
    return item.get(name) if isinstance(item, Mapping) else getattr(item, name, None)


def _target(item: object) -> TargetInfo:
    name = target_field(item, "name")
    if not isinstance(name, str) or not name:
        raise ValueError("every run_info['targets'] entry needs a non-empty str name")
    base_url = _optional_str(target_field(item, "base_url"), "targets[].base_url")
    return TargetInfo(
        name=name,
        base_url=safe_url(base_url) if base_url is not None else None,
        profile=_optional_str(target_field(item, "profile"), "targets[].profile"),
        expected_failures=_optional_str(
            _path_text(target_field(item, "expected_failures")), "targets[].expected_failures"
        ),
    )


def _path_text(value: object) -> object:
    """A path as text (a target's expected-failures file may be a ``Path``)."""
    return str(value) if isinstance(value, PurePath) else value


def _with_result_targets(declared: list[TargetInfo], result_targets: Iterable[str]) -> list[TargetInfo]:
    names = {t.name for t in declared}
    targets = list(declared)
    for name in result_targets:
        if name not in names:
            names.add(name)
            targets.append(TargetInfo(name, declared=False))
    return targets


def _shared_profile(targets: Sequence[TargetInfo]) -> str | None:
    profiles = {t.profile for t in targets}
    return profiles.pop() if len(profiles) == 1 else None


def _optional_str(value: object, what: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"run_info {what} must be a str or None, not {type(value).__name__}")


def _timestamp(value: object, what: str) -> str | None:
    """ISO 8601 in UTC, from a datetime (naive means local time) or an ISO 8601 string."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"run_info[{what!r}] must be a datetime or ISO 8601 str, not {type(value).__name__}")
    return _iso(value.astimezone(UTC))


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
