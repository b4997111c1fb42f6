"""Conformance checks: small named functions with stable ids, one module per endpoint family.

    from gatecheck.checks import CHECKS, load_all, run_check, select
    load_all()                        # import every family module (registers its checks)
    results = run_checks(session, select(["stream_done_last"]))

Family modules: ``chat`` (non-streaming), ``tools`` (tool calling, JSON mode), ``stream``
(streaming chat), ``anthropic`` (/v1/messages), ``errors`` (auth, status codes, error bodies),
``ratelimit``, ``auxiliary`` (the ``aux`` area: models, balance, images, search), ``fuzz``. The
framework is in ``base`` (Failure, Check, registry, decorators), ``context`` (Session,
CheckContext) and ``runner``.
"""

from __future__ import annotations

from gatecheck.checks.base import (
    AREAS,
    CHECKS,
    EXTRA_MARKERS,
    FAMILIES,
    OBSERVATIONS,
    Check,
    CheckGroup,
    Cost,
    Failure,
    NotChecked,
    PlanSettings,
    check,
    load_all,
    observation,
    plan_cost,
    profile_rule,
    requires,
)
from gatecheck.checks.context import CheckContext, RateLimitSetup, RunSettings, Session
from gatecheck.checks.runner import applicable, format_failure, order_checks, run_check, run_checks, select

__all__ = [
    "AREAS",
    "CHECKS",
    "EXTRA_MARKERS",
    "FAMILIES",
    "OBSERVATIONS",
    "Check",
    "CheckContext",
    "CheckGroup",
    "Cost",
    "Failure",
    "NotChecked",
    "PlanSettings",
    "RateLimitSetup",
    "RunSettings",
    "Session",
    "applicable",
    "check",
    "format_failure",
    "load_all",
    "observation",
    "order_checks",
    "plan_cost",
    "profile_rule",
    "requires",
    "run_check",
    "run_checks",
    "select",
]
