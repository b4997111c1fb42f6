"""Known deviations: the FAILs a team accepts on purpose, so CI can run the suite on day one.

An *expected-failures file* (TOML; ``--expected-failures FILE``, or ``expected_failures = "path"``
in the target file) lists checks, optionally one rule of a check, optionally one target, each with
the reason it is accepted and an optional expiry date::

    version = 1

    [[deviation]]
    check = "errors_unknown_model"
    rule = "error-status"            # optional: only this rule's findings are accepted
    target = "litellm"               # optional: only against this target
    reason = "LiteLLM answers 400 for an unknown model; accepted by the platform team (2026-05)"
    expires = 2026-09-30             # optional: from the day after, the entry fails the run

Applied to each result (``ExpectedFailures.apply``):

- a FAIL whose every failing rule is listed (or whose check is listed whole) becomes **XFAIL**, a
  known deviation: shown everywhere, never failing the run;
- a FAIL with a failing rule nobody listed stays a FAIL;
- a listed check (or rule) that no longer fails makes the check FAIL as a *stale entry* ("remove
  it"), so the file cannot rot;
- an expired entry accepts nothing: its FAIL is back, with a note saying the entry expired;
- a SKIP is left alone (nothing was seen: the entry is neither confirmed nor stale).

A mistake in the file (unknown check id, a rule the check does not report, a missing reason, the
placeholder reason ``--write-expected-failures`` writes, a bad date) is a ``ConfigError``: exit 2
before anything is sent. ``write_expected`` writes today's failures as a starting point.
"""

from __future__ import annotations

import itertools
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from gatecheck.errors import ConfigError
from gatecheck.results import CheckResult, Verdict

KNOWN: Verdict = "XFAIL"
"""The verdict of a FAIL listed as a known deviation."""

FILE_VERSION = 1
PLACEHOLDER_REASON = "UNREVIEWED: say why this deviation is accepted and who accepted it"
"""The reason ``--write-expected-failures`` writes. A file still holding it is refused (exit 2), so
a generated file cannot go into CI before someone has written each reason."""

DEFAULT_EXPIRY_DAYS = 90
"""``--write-expected-failures`` dates each new entry this far ahead: accepted deviations get reviewed."""

_ENTRY_KEYS = ("check", "rule", "target", "reason", "expires")
_TOP_KEYS = ("version", "deviation")


@dataclass(frozen=True)
class Entry:
    """One accepted deviation: a check (or one rule of it), on every target or one."""

    check: str
    reason: str
    rule: str | None = None
    target: str | None = None
    expires: date | None = None

    def label(self) -> str:
        """``check``, ``check (rule r)``, ``check (rule r, target t)``."""
        scope = [f"rule {self.rule}"] if self.rule else []
        scope += [f"target {self.target}"] if self.target else []
        return f"{self.check} ({', '.join(scope)})" if scope else self.check

    def expired(self, today: date) -> bool:
        """Past its expiry date (the date itself is still valid)."""
        return self.expires is not None and today > self.expires

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "rule": self.rule,
            "target": self.target,
            "reason": self.reason,
            "expires": None if self.expires is None else self.expires.isoformat(),
        }


@dataclass(frozen=True)
class ExpectedFailures:
    """The entries of one file (``path``), as they apply to a run."""

    path: Path
    entries: tuple[Entry, ...]

    def for_target(self, name: str) -> ExpectedFailures:
        """The entries that apply to target ``name`` (those naming no target, or naming it)."""
        return replace(self, entries=tuple(e for e in self.entries if e.target in (None, name)))

    def other_targets(self, names: Iterable[str]) -> list[str]:
        """Targets the entries name that are not among ``names`` (their entries apply to nothing here)."""
        known = set(names)
        return sorted({e.target for e in self.entries if e.target is not None and e.target not in known})

    def apply(self, result: CheckResult, today: date | None = None) -> CheckResult:
        """``result`` as the file judges it: XFAIL, a stale or expired entry's FAIL, or unchanged."""
        today = today or datetime.now(UTC).date()
        mine = [e for e in self.entries if e.check == result.check_id and e.target in (None, result.target)]
        if not mine or result.verdict == "SKIP":
            return result
        active = [e for e in mine if not e.expired(today)]
        expired = [e for e in mine if e.expired(today)]
        if result.verdict != "FAIL":
            return self._judged(result, "FAIL", "stale", mine, [self._stale(e, result) for e in mine])
        failing = set(result.extra.get("failing_rules") or ())
        whole = any(e.rule is None for e in active)
        listed = {e.rule for e in active if e.rule is not None}
        stale = [e for e in active if e.rule is not None and e.rule not in failing]
        notes = [self._stale(e, result) for e in stale] + [self._expired(e) for e in expired]
        covered = whole or (bool(failing) and failing <= listed)
        if covered and not notes:
            return self._judged(result, KNOWN, "known", active, [])
        status = "stale" if stale else "expired" if expired and not covered else "unlisted"
        return self._judged(result, "FAIL", status, mine, notes)

    def _judged(
        self, result: CheckResult, verdict: Verdict, status: str, entries: Sequence[Entry], notes: list[str]
    ) -> CheckResult:
        extra = {
            **result.extra,
            "expected_failure": {
                "file": str(self.path),
                "status": status,
                "verdict": result.verdict,
                "entries": [e.to_json() for e in entries],
            },
        }
        if verdict == KNOWN:
            head = known_header(entries, self.path)
            message = f"{head}\n{result.message}" if result.message else head
        else:
            message = "\n\n".join([*notes, result.message]) if result.message else "\n\n".join(notes)
        return replace(result, verdict=verdict, message=message, extra=extra)

    def _stale(self, entry: Entry, result: CheckResult) -> str:
        if result.verdict != "FAIL":
            now = "passes" if result.verdict == "PASS" else "only warns"
            seen = f"the check {now} now: the deviation it accepts is gone"
        else:
            failing = ", ".join(sorted(result.extra.get("failing_rules") or ())) or "none"
            seen = f"the check no longer fails rule {entry.rule} (it fails: {failing})"
        return (
            f"FAIL: stale entry in {self.path}: remove it\n"
            f"  Entry: {entry.label()}: {entry.reason}\n"
            f"  Now: {seen}"
        )

    def _expired(self, entry: Entry) -> str:
        assert entry.expires is not None
        return (
            f"FAIL: expired entry in {self.path}: fix the deviation, or renew the entry with a new date\n"
            f"  Entry: {entry.label()}: {entry.reason}\n"
            f"  Expired: {entry.expires.isoformat()} (it accepts nothing since)"
        )


def known_header(entries: Sequence[Entry], path: Path) -> str:
    """The first line of an XFAIL message: which entry accepts it, why, until when."""
    parts = []
    for entry in entries:
        until = f" (until {entry.expires.isoformat()})" if entry.expires else ""
        parts.append(f"{entry.label()}: {entry.reason}{until}")
    return f"XFAIL: known deviation, accepted in {path}: " + "; ".join(parts)


# ---------------------------------------------------------------- reading the file


def load_expected(path: str | Path) -> ExpectedFailures:
    """The file at ``path``, every entry checked against the registered checks and rules."""
    from gatecheck.checks import load_all

    file = Path(path)
    label = str(file)
    try:
        with file.open("rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError("expected failures", label, f"a readable TOML file ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("expected failures", label, f"valid TOML: {exc}") from None
    for key in document:
        if key not in _TOP_KEYS:
            raise ConfigError(
                f"key (in {label})", key, f"one of {', '.join(_TOP_KEYS)}{_suggest(key, _TOP_KEYS)}"
            )
    if document.get("version", FILE_VERSION) != FILE_VERSION:
        raise ConfigError(f"version (in {label})", document["version"], f"{FILE_VERSION}")
    items = document.get("deviation", [])
    if not isinstance(items, list):
        raise ConfigError(f"deviation (in {label})", items, "an array of tables: [[deviation]]")
    checks = load_all()
    entries = tuple(_entry(item, f"deviation {n} (in {label})", checks) for n, item in enumerate(items, 1))
    seen: set[tuple[str, str | None, str | None]] = set()
    for entry in entries:
        scope = (entry.check, entry.rule, entry.target)
        if scope in seen:
            raise ConfigError(f"deviation (in {label})", entry.label(), "each check, rule and target once")
        seen.add(scope)
    return ExpectedFailures(file, entries)


def _entry(item: object, where: str, checks: dict[str, Any]) -> Entry:
    from gatecheck.rules import rule as registered_rule

    if not isinstance(item, dict):
        raise ConfigError(where, item, "a table with check and reason")
    for key in item:
        if key not in _ENTRY_KEYS:
            raise ConfigError(
                f"key in {where}", key, f"one of {', '.join(_ENTRY_KEYS)}{_suggest(key, _ENTRY_KEYS)}"
            )
    check_id = _string(item.get("check"), f"check in {where}", "a check id (gatecheck conform --list)")
    if check_id not in checks:
        hint = _suggest(check_id, checks)
        raise ConfigError(f"check in {where}", check_id, f"a check id (gatecheck conform --list){hint}")
    rule_id = item.get("rule")
    if rule_id is not None:
        declared = checks[check_id].rules
        rule_id = _string(rule_id, f"rule in {where}", f"a rule of {check_id}: {', '.join(declared)}")
        try:
            registered_rule(rule_id)
        except KeyError:
            registered = False
        else:
            registered = True
        if not registered or (declared and rule_id not in declared and rule_id != "check-error"):
            allowed = f"a rule {check_id} reports: {', '.join(declared) or 'see gatecheck conform --list'}"
            raise ConfigError(f"rule in {where}", rule_id, allowed + _suggest(rule_id, declared))
    target = item.get("target")
    if target is not None:
        target = _string(target, f"target in {where}", "a target name")
    reason = _string(item.get("reason"), f"reason in {where}", "why the deviation is accepted (required)")
    if PLACEHOLDER_REASON in reason:
        raise ConfigError(
            f"reason in {where}",
            reason,
            "the reason this deviation is accepted, written by a person "
            "(the placeholder of --write-expected-failures is still there)",
        )
    return Entry(
        check_id, reason.strip(), rule_id, target, _expiry(item.get("expires"), f"expires in {where}")
    )


def _string(value: object, where: str, allowed: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(where, value, allowed)
    return value.strip()


def _expiry(value: object, where: str) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        raise ConfigError(where, value.isoformat(), "a date (2026-09-30), not a date and time")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ConfigError(where, value, "a date: expires = 2026-09-30")


def _suggest(word: str, choices: Iterable[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


# ---------------------------------------------------------------- writing a starting point


def write_expected(
    results: Sequence[CheckResult],
    path: Path,
    *,
    previous: Sequence[ExpectedFailures] = (),
    several_targets: bool = False,
    today: date | None = None,
) -> int:
    """Write today's failures to ``path`` as an expected-failures file; the number of entries.

    Each failing rule of a FAIL or XFAIL is covered: by the entry of ``previous`` that accepted it
    (kept as it was, reason and date included) unless that entry expired, else by a new entry with
    the placeholder reason (the file is refused until someone replaces it) and an expiry
    ``DEFAULT_EXPIRY_DAYS`` ahead. Stale entries are left out. New entries name their target
    when the run had several.
    """
    today = today or datetime.now(UTC).date()
    expiry = today + timedelta(days=DEFAULT_EXPIRY_DAYS)
    chosen: dict[tuple[str, str | None, str | None], tuple[Entry, str]] = {}
    for result in results:
        if result.verdict not in ("FAIL", KNOWN):
            continue
        record = result.extra.get("expected_failure", {})
        listed = [_from_json(item) for item in record.get("entries", [])]
        valid = [e for e in listed if not e.expired(today)]
        titles = _titles(result.message)
        for rule in result.extra.get("failing_rules") or [None]:
            covering = [e for e in valid if e.rule in (None, rule)]
            if not covering:
                target = result.target if several_targets else None
                covering = [Entry(result.check_id, PLACEHOLDER_REASON, rule, target, expiry)]
            for entry in covering:
                chosen.setdefault(
                    (entry.check, entry.rule, entry.target), (entry, titles.get(rule or "", ""))
                )
    path.write_text(_render(list(chosen.values()), [p.path for p in previous]), encoding="utf-8")
    return len(chosen)


def _from_json(item: dict[str, Any]) -> Entry:
    expires = item.get("expires")
    return Entry(
        check=item["check"],
        reason=item["reason"],
        rule=item.get("rule"),
        target=item.get("target"),
        expires=None if expires is None else date.fromisoformat(expires),
    )


def _titles(message: str) -> dict[str, str]:
    """The first line of each finding, by its rule (``FAIL: <title>`` then ``  Rule: <id> (...)``)."""
    found: dict[str, str] = {}
    lines = message.splitlines()
    for head, rule_line in itertools.pairwise(lines):
        if head.startswith("FAIL: ") and rule_line.strip().startswith("Rule: "):
            rule_id = rule_line.strip().removeprefix("Rule: ").split(" ", 1)[0]
            found.setdefault(rule_id, head.removeprefix("FAIL: "))
    return found


def _render(entries: list[tuple[Entry, str]], previous: Sequence[Path]) -> str:
    from_files = f" (entries kept from {', '.join(map(str, previous))})" if previous else ""
    lines = [
        "# gatecheck expected failures: known deviations, accepted on purpose (docs/conformance.md).",
        f"# Written by gatecheck conform --write-expected-failures{from_files}.",
        f'# Replace every "{PLACEHOLDER_REASON}":',
        "# gatecheck refuses this file until each reason is written by a person.",
        "",
        f"version = {FILE_VERSION}",
    ]
    for entry, title in entries:
        lines += ["", "[[deviation]]"]
        if title:
            lines.append(f"# {title}".replace("\n", " "))
        lines.append(f"check = {_toml_string(entry.check)}")
        if entry.rule:
            lines.append(f"rule = {_toml_string(entry.rule)}")
        if entry.target:
            lines.append(f"target = {_toml_string(entry.target)}")
        lines.append(f"reason = {_toml_string(entry.reason)}")
        if entry.expires:
            lines.append(f"expires = {entry.expires.isoformat()}")
    return "\n".join(lines) + "\n"


def _toml_string(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    import json

    return json.dumps(value, ensure_ascii=False)
