"""Running checks: preconditions, grading by profile, one formatter, ``CheckResult`` out.

The pytest plugin and the fault-matrix tests both run checks through ``run_check``, so a verdict
means the same wherever it is produced.
"""

from __future__ import annotations

import hashlib
import time
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import replace

from gatecheck.checks.base import CHECKS, Check, Failure, NotChecked, load_all, with_severity
from gatecheck.checks.context import Session
from gatecheck.curl import body_file, to_curl
from gatecheck.profiles import Profile
from gatecheck.redaction import Secret, redact, redacting
from gatecheck.results import CheckResult, Verdict
from gatecheck.rules import rule

_INDENT = "    "
MAX_CURL_BODY = 16_384
"""A larger request body (the over-long prompt) is referenced as a file in the repro, not inlined."""


def applicable(check: Check, profile: Profile) -> bool:
    """False when the check enforces a rule the profile does not state (it is then not run at all)."""
    return all(profile.has_rule(rule) for rule in check.profile_rules)


def select(ids: Iterable[str] | None = None, *, profile: Profile | None = None) -> list[Check]:
    """Registered checks by id (all when ``ids`` is None), keeping only those the profile applies."""
    load_all()
    if ids is None:
        chosen = list(CHECKS.values())
    else:
        unknown = [i for i in ids if i not in CHECKS]
        if unknown:
            raise KeyError(f"unknown check ids: {', '.join(unknown)}")
        chosen = [CHECKS[i] for i in ids]
    return [c for c in chosen if profile is None or applicable(c, profile)]


def missing_capabilities(check: Check, session: Session) -> list[str]:
    """Capabilities the check needs that the target declares it does not offer."""
    return sorted(c for c in check.requires if not session.target.claims(c))


def run_check(session: Session, check: Check) -> CheckResult:
    """Run one check and grade it; never raises for anything the target does.

    A check cut short by the run (the target stopped answering, the deadline, the budget) keeps
    the failures it had already seen; with none it is a SKIP giving the reason. The session's keys
    are masked in every quote made meanwhile, before any cut (``redacting``).
    """
    with redacting(session.secrets):
        return _run_check(session, check)


def _run_check(session: Session, check: Check) -> CheckResult:
    started = time.perf_counter()
    missing = missing_capabilities(check, session)
    if missing:
        reason = f"the target declares it does not offer: {', '.join(missing)}"
        return _result(session, check, "SKIP", reason, started, {})
    ctx = session.context(check)
    extra: dict[str, object] = {}
    cut_short = ""
    try:
        session.guard()
        check.func(ctx, *(ctx.observe(name) for name in check.observations))
    except Failure as failure:
        ctx.record(failure)
    except NotChecked as exc:
        cut_short = str(exc)
    except Exception as exc:  # a response shape the check did not foresee: report it, do not crash the run
        ctx.record(_crash(check, exc))
        extra["internal_error"] = redact("".join(traceback.format_exception(exc)), session.secrets)
    graded = grade(ctx.failures, session.profile, check.citation)
    if cut_short and not graded:
        return _result(session, check, "SKIP", cut_short, started, extra)
    verdict = verdict_of(graded)
    extra["rules"] = sorted({f.rule for f in graded})
    extra["failing_rules"] = sorted({f.rule for f in graded if f.severity == "fail"})
    extra["findings"] = [finding_key(f, session.secrets) for f in graded]
    undeclared = sorted({f.rule for f in ctx.failures} - set(check.rules)) if check.rules else []
    if undeclared:  # a gatecheck bug: the check reports a rule it does not own (tests assert none)
        extra["undeclared_rules"] = undeclared
    message = FINDING_SEPARATOR.join(format_failure(f, check.citation) for f in graded)
    if cut_short:
        message += f"{FINDING_SEPARATOR}Then the check stopped: {cut_short}"
    return replace(_result(session, check, verdict, message, started, extra), files=failure_files(graded))


FINDING_SEPARATOR = "\n\n"
"""Between the formatted findings of one message (a finding never holds an empty line)."""


def finding_key(failure: Failure, secrets: Sequence[Secret]) -> str:
    """What makes findings of several checks one root cause: the rule and the received evidence
    (as shown: ``secrets`` masked, so a replay, whose keys are stand-ins, gives the same key)."""
    received = redact(failure.received, secrets)
    digest = hashlib.sha256(received.encode("utf-8", "backslashreplace")).hexdigest()[:16]
    return f"{failure.rule}:{digest}"


def run_checks(session: Session, checks: Sequence[Check]) -> list[CheckResult]:
    """Run ``checks`` in order (rate-limit checks last when they share the main key)."""
    return [run_check(session, c) for c in order_checks(checks, session.ratelimit.dedicated)]


def order_checks(checks: Sequence[Check], dedicated_ratelimit_key: bool) -> list[Check]:
    """Rate-limit checks go last when they burst the key everything else uses; ``heavy`` ones after all."""
    return sorted(checks, key=lambda c: run_order(c, dedicated_ratelimit_key))


def run_order(check: Check, dedicated_ratelimit_key: bool) -> tuple[bool, bool]:
    """A sort key: a very large request (``heavy``: a server may not survive it) runs after every
    other check, and rate-limit checks after the rest when they burst the key everything else uses."""
    return ("heavy" in check.markers, check.area == "ratelimit" and not dedicated_ratelimit_key)


def grade(failures: Iterable[Failure], profile: Profile, citation: str) -> list[Failure]:
    """Failures as the profile grades them, deduplicated, each with a citation."""
    seen: set[tuple[str, str, str, str]] = set()
    graded: list[Failure] = []
    for failure in failures:
        kept = with_severity(failure, profile)
        if kept is None or kept.key() in seen:
            continue
        seen.add(kept.key())
        if not kept.citation:
            kept = replace(kept, citation=citation)
        graded.append(kept)
    return graded


def verdict_of(failures: Sequence[Failure]) -> Verdict:
    """FAIL if any failure is a fail, WARN if any is a warning, PASS otherwise."""
    if any(f.severity == "fail" for f in failures):
        return "FAIL"
    return "WARN" if failures else "PASS"


def format_failure(failure: Failure, citation: str = "") -> str:
    """The one rendering of a failure: rule, where documented, expected, received, reproduction."""
    lines = [
        f"{failure.severity.upper()}: {failure.title}",
        f"  Rule: {failure.rule} ({_provenance(failure.rule)})",
        f"  Documented in: {failure.citation or citation}",
        f"  Expected: {_indent(failure.expected)}",
        f"  Received: {_indent(failure.received)}",
    ]
    if failure.exchange is not None:
        command = to_curl(failure.exchange.request, max_body=MAX_CURL_BODY)
        lines += ["  Reproduce with:", _INDENT + _indent(command, _INDENT)]
    return "\n".join(lines)


def _provenance(rule_id: str) -> str:
    try:
        return rule(rule_id).provenance
    except KeyError:
        return "unregistered rule"


def failure_files(failures: Iterable[Failure]) -> dict[str, bytes]:
    """The request bodies ``format_failure`` left out of its curl commands, by the file name they name."""
    saved = (body_file(f.exchange.request, MAX_CURL_BODY) for f in failures if f.exchange is not None)
    return dict(item for item in saved if item is not None)


def _indent(text: str, prefix: str = _INDENT) -> str:
    return text.replace("\n", "\n" + prefix)


def _crash(check: Check, exc: Exception) -> Failure:
    return Failure(
        title=f"the check could not evaluate the response ({type(exc).__name__}: {exc})",
        rule="check-error",
        expected="a response the check can read",
        received=f"{type(exc).__name__}: {exc} (if the response looks right, this is a gatecheck bug)",
        citation=check.citation,
    )


def _result(
    session: Session, check: Check, verdict: Verdict, message: str, started: float, extra: dict[str, object]
) -> CheckResult:
    extra["requests"] = session.spent.get(check.id, 0)
    return CheckResult(
        check_id=check.id,
        area=check.area,
        verdict=verdict,
        target=session.target.name,
        citation=check.citation,
        message=redact(message, session.secrets),
        duration_s=round(time.perf_counter() - started, 4),
        extra=extra,
    )
