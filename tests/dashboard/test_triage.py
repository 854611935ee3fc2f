"""Triage: the rules as a table, and a real caseload sorted most urgent first."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ivr_cbt.dashboard import triage
from ivr_cbt.dashboard.weekly import Week

from ..conftest import START, T0


def weeks(*rows) -> list[Week]:
    """Weeks from (week, pain, practice, safety) rows; status complete."""
    return [
        Week(w, "complete", {"pain_avg": pain, "practice_days": practice, "safety": safety})
        for w, pain, practice, safety in rows
    ]


@pytest.mark.parametrize(
    "rows, current, alerts, expected",
    [
        # Pain up 2 from baseline in two consecutive weeks.
        ([(0, 4, None, 2), (1, 6, 3, 2), (2, 7, 3, 2)], 3, {}, ["pain_up"]),
        # Up 2 in only the latest week: not yet.
        ([(0, 4, None, 2), (1, 5, 3, 2), (2, 7, 3, 2)], 3, {}, []),
        # Up 2 in two weeks with a missed week between: not "running".
        ([(0, 4, None, 2), (1, 6, 3, 2), (3, 7, 3, 2)], 4, {}, []),
        # Up 1.x: not enough.
        ([(0, 5, None, 2), (1, 6, 3, 2), (2, 6, 3, 2)], 3, {}, []),
        # No baseline: no pain rule.
        ([(1, 9, 3, 2), (2, 9, 3, 2)], 3, {}, []),
        # No practice in the latest week that reported it.
        ([(0, 4, None, 2), (1, 4, 2, 2), (2, 4, 0, 2)], 3, {}, ["no_practice"]),
        # Zero practice in week 0 (baseline) does not count.
        ([(0, 4, 0, 2)], 1, {}, []),
        # Missed the two last closed weeks.
        ([(0, 4, None, 2), (1, 4, 3, 2)], 4, {}, ["missed"]),
        # An open safety alert beats everything.
        ([(0, 4, None, 2), (1, 6, 0, 1), (2, 7, 0, 2)], 3, {"safety": 1}, ["safety", "pain_up", "no_practice"]),
        # A "yes" whose alert was acknowledged still shows, lower.
        ([(0, 4, None, 2), (1, 4, 3, 1)], 2, {}, ["safety"]),
    ],
)
def test_triage_rules(rows, current, alerts, expected):
    found = triage.flags(weeks(*rows), current, open_alerts=alerts)
    assert [f.kind for f in found] == expected


def test_each_flag_says_why():
    found = triage.flags(weeks((0, 4, None, 2), (1, 6, 0, 2), (2, 7, 0, 2)), 5, open_alerts={"safety": 2})
    reasons = {f.kind: f.reason for f in found}
    assert reasons == {
        "safety": "safety answer: 2 open safety alerts",
        "pain_up": "pain 6 and 7 in weeks 1-2, baseline 4: up 2 or more two weeks running",
        "missed": "missed 2 weeks running (weeks 3-4)",
        "no_practice": "no practice days in week 2",
    }


def test_a_paused_patient_is_not_flagged_for_missed_weeks():
    assert triage.flags(weeks((0, 4, None, 2)), 5, open_alerts={}, active=False) == []


def test_longer_absences_weigh_more_up_to_a_cap():
    def weight(current):
        (flag,) = triage.flags(weeks((0, 4, None, 2)), current, open_alerts={})
        return flag.weight

    assert weight(2) < weight(3) < weight(5) == weight(9)


# --- a real caseload ----------------------------------------------------------------------------


def week_call(call, patient, week: int, script: str):
    """Play a call on the Monday of program week ``week`` (10:00 in New York)."""
    return call(patient, script, now=T0 + timedelta(weeks=week - 1))


def test_the_caseload_puts_the_most_urgent_first_with_reasons(therapist, sign_in, add_patient, assign, call, clock):
    steady, rising, safety, absent = (add_patient(name=n) for n in ("Steady S", "Rising R", "Safety Q", "Absent A"))
    for patient in (steady, rising, safety, absent):
        assign(patient, therapist)
        week_call(call, patient, 0, "1234,4,6,3000#,0,2")  # baseline
    for week, pain in ((1, 6), (2, 7)):
        week_call(call, rising, week, f"1234,{pain}#,6,3000#,3,2")
        week_call(call, steady, week, "1234,4,6,3000#,3,2")
        week_call(call, safety, week, "1234,4,6,3000#,3,2")
    week_call(call, safety, 3, "1234,4,6,3000#,3,1,2")  # "yes" to the safety question
    week_call(call, steady, 3, "1234,4,6,3000#,3,2")
    clock.set(T0 + timedelta(weeks=2, days=1))  # Tuesday of week 3
    page = sign_in(therapist).get("/").get_data(as_text=True)
    order = [page.index(name) for name in ("Safety Q", "Rising R", "Absent A", "Steady S")]
    assert order == sorted(order), "safety, then pain up, then two missed weeks, then nothing flagged"
    assert "safety answer: an open safety alert" in page
    assert "pain 6 and 7 in weeks 1-2, baseline 4: up 2 or more two weeks running" in page
    assert "missed 2 weeks running (weeks 1-2)" in page
    assert page.count('class="flagged"') == 3


def test_this_weeks_status_and_last_check_in_are_shown(signed_in, therapist, add_patient, assign, call):
    patient = add_patient()
    assign(patient, therapist)
    call(patient, "1234,6,hangup")
    page = signed_in.get("/").get_data(as_text=True)
    assert '<span class="status status-partial">partial</span>' in page
    assert "week 1, 02 Mar 10:0" in page and START.isoformat() not in page
