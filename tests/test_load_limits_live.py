"""The load ``limits`` scenario on a gateway we did not write: a 3-RPM/2,000-TPM key whose model
counts 4 characters a token (issue 9: the TPM probe sized one request in words above the whole
TPM, then blamed the gateway for under-admission and a broken Retry-After).

Locust runs in a subprocess (``test_load_run.run_locust``) against the hand-made gateway.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _handmade_gateway import LIMITED_KEY, MAIN_KEY, Handmade, serving
from test_load_run import _why, run_locust

ARGS = ("--scenario", "limits", "--window-seconds", "1", "--limits-windows", "2", "--model", "hm-chat")


@pytest.mark.parametrize("charge", ["before", "after"])
def test_a_key_whose_model_counts_4_characters_a_token_passes(tmp_path: Path, charge: str) -> None:
    spec = Handmade(rpm=6, tpm=2000, window_s=1.0, tpm_charge=charge)  # type: ignore[arg-type]
    with serving(spec) as (url, server):
        proc, summary = run_locust(
            url,
            tmp_path,
            *ARGS,
            "--limits-key",
            "small=HM_KEY:6:2000",
            key=MAIN_KEY,
            env={"HM_KEY": LIMITED_KEY},
        )
    assert summary is not None, _why(proc)
    rpm, tpm = summary["limits"]["probes"]
    assert tpm["not_checked"] is None and tpm["tokens_per_word"] != 1.0
    assert tpm["request_cost"] <= 1000 + 10, "a request is at most half the TPM in the target's tokens"
    assert max(server.seen) <= 1000 + 10
    assert rpm["passed"] and tpm["passed"], [rpm["failures"], tpm["failures"]]
    assert tpm["wait_worked"] and tpm["retry_after_present"]
    assert "LIMITS small:tpm: ok" in proc.stdout


def test_a_3_rpm_2000_tpm_key_is_not_blamed(tmp_path: Path) -> None:
    """Issue 9's key: its TPM probe is not checked (and says why), its RPM probe passes."""
    spec = Handmade(rpm=3, tpm=2000, window_s=1.0, tpm_charge="after")
    with serving(spec) as (url, _):
        proc, summary = run_locust(
            url,
            tmp_path,
            *ARGS,
            "--limits-key",
            "small=HM_KEY:3:2000",
            key=MAIN_KEY,
            env={"HM_KEY": LIMITED_KEY},
        )
    assert summary is not None, _why(proc)
    rpm, tpm = summary["limits"]["probes"]
    assert rpm["passed"], rpm["failures"]
    assert not tpm["failures"] and "cannot be told from the RPM" in tpm["not_checked"]
    assert "LIMITS small:tpm: not checked" in proc.stdout


def test_a_tpm_probe_the_target_refuses_for_its_size_is_not_checked(tmp_path: Path) -> None:
    spec = Handmade(rpm=6, tpm=2000, window_s=1.0, context_lengths={"hm-chat": 700})
    with serving(spec) as (url, _):
        proc, summary = run_locust(
            url,
            tmp_path,
            *ARGS,
            "--limits-key",
            "small=HM_KEY:6:2000",
            "--limits-probes",
            "tpm",
            key=MAIN_KEY,
            env={"HM_KEY": LIMITED_KEY},
        )
    assert summary is not None, _why(proc)
    (tpm,) = summary["limits"]["probes"]
    assert not tpm["passed"] and not tpm["failures"]
    assert "for their own size" in tpm["not_checked"]
    assert "LIMITS small:tpm: not checked" in proc.stdout
