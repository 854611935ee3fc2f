"""The outcome report computed from the database (SQLite, and PostgreSQL when TEST_DATABASE_URL is set)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from ivr_cbt.models import AuditEvent, Patient
from ivr_cbt.report import Options, ReportError, mark_synthetic, outcome_report, stats
from ivr_cbt.report.extract import target_week

from .helpers import rows
from .report_data import ITEM_KEYS, START, Virtual, Week, insert_cohort, pains

AS_OF = datetime.combine(START, datetime.min.time(), tzinfo=UTC) + timedelta(weeks=20)

# A fixed cohort; comments give each patient's change (week-13 value minus week-0 value).
COHORT = [
    pains("guided", {0: 8, 13: 5}),  # -3, responder (37.5%)
    pains("guided", {0: 6, 12: 4, 14: 2}),  # -2 from week 12: a tie with 14 goes to the earlier week
    pains("guided", {0: 7, 13: 7, 12: 1}),  # 0: week 13 itself beats its neighbours
    pains("guided", {0: 5, 11: 4}),  # -1 (20%: not a responder)
    pains("guided", {0: 9, 16: 3}),  # week 16 is outside 13 +- 2: no 3-month value
    pains("guided", {13: 4}),  # no baseline
    pains("automated", {0: 6, 13: 6}),  # 0
    pains("automated", {0: 8, 13: None, 14: 7}),  # -1: pain skipped at 13, answered at 14
    pains("automated", {0: 4, 15: 5}),  # +1
    pains("automated", {0: 10, 13: 7}),  # -3, exactly 30%: a responder
    pains("automated", {0: 0, 13: 0}),  # 0, baseline 0: not counted for responders
    Virtual("monitoring", {0: Week(pain=6), 1: Week(pain=6, stop_at="sleep_quality")}),
]
GUIDED_CHANGES = [-3, -2, 0, -1]
AUTOMATED_CHANGES = [0, -1, 1, -3, 0]


@pytest.fixture
def engine(app):
    return app.extensions["db_engine"]


@pytest.fixture
def cohort(engine):
    return insert_cohort(engine, COHORT)


def report_of(engine, **options):
    return outcome_report(engine, Options(**options), now=AS_OF, actor="test", items=ITEM_KEYS)


def arm(report: dict, name: str) -> dict:
    (found,) = [a for a in report["arms"] if a["name"] == name]
    return found


def adherence(report: dict, name: str) -> dict:
    (found,) = [a for a in report["adherence"] if a["arm"] == name]
    return found


@pytest.mark.parametrize(("months", "week"), [(3, 13), (6, 26), (9, 39), (12, 52), (1, 4)])
def test_months_map_to_the_program_week_at_52_weeks_a_year(months, week):
    assert target_week(months) == week


def test_each_arm_counts_enrolled_patients_and_those_with_baseline_and_3_month_values(engine, cohort):
    report = report_of(engine)
    assert [a["name"] for a in report["arms"]] == ["monitoring", "automated", "guided"]
    guided = arm(report, "guided")
    assert (guided["n_enrolled"], guided["n_with_baseline"], guided["n_with_followup"], guided["n"]) == (6, 5, 5, 4)
    assert guided["followup_weeks"] == {"11": 1, "12": 1, "13": 3}
    automated = arm(report, "automated")
    assert (automated["n_enrolled"], automated["n_with_baseline"], automated["n_with_followup"]) == (5, 5, 5)
    assert automated["followup_weeks"] == {"13": 3, "14": 1, "15": 1}
    assert arm(report, "monitoring")["n"] == 0


def test_the_mean_change_per_arm_is_computed_from_complete_cases_with_the_nearest_follow_up(engine, cohort):
    report = report_of(engine)
    for name, changes in (("guided", GUIDED_CHANGES), ("automated", AUTOMATED_CHANGES)):
        expected = stats.mean_ci(changes)
        summary = arm(report, name)
        assert summary["n"] == len(changes)
        assert summary["pain_change_mean"] == pytest.approx(sum(changes) / len(changes))
        assert summary["pain_change_ci"] == pytest.approx(list(expected.ci))
    assert arm(report, "guided")["pain_baseline_mean"] == pytest.approx((8 + 6 + 7 + 5) / 4)
    assert arm(report, "guided")["pain_followup_mean"] == pytest.approx((5 + 4 + 7 + 4) / 4)


def test_responders_use_the_30_percent_rule_with_wilson_intervals(engine, cohort):
    report = report_of(engine)
    guided, automated = arm(report, "guided"), arm(report, "automated")
    assert (guided["responders_30pct_count"], guided["responders_30pct_n"]) == (2, 4)
    assert guided["responders_30pct"] == pytest.approx(0.5)
    assert guided["responders_30pct_ci"] == pytest.approx(list(stats.wilson(2, 4).ci))
    assert (automated["responders_30pct_count"], automated["responders_30pct_n"]) == (1, 4)
    assert automated["responders_30pct_excluded_zero_baseline"] == 1


def test_each_arm_is_compared_with_guided_by_welch_difference_hedges_g_and_the_margin(engine, cohort):
    report = report_of(engine)
    assert report["reference_arm"] == "guided"
    assert [c["arms"] for c in report["comparisons"]] == [["monitoring", "guided"], ["automated", "guided"]]
    monitoring, automated = report["comparisons"]
    welch = stats.welch_difference(AUTOMATED_CHANGES, GUIDED_CHANGES)
    g = stats.hedges_g(AUTOMATED_CHANGES, GUIDED_CHANGES)
    assert automated["difference"] == pytest.approx(-3 / 5 - (-6 / 4))
    assert automated["ci"] == pytest.approx(list(welch.ci))
    assert automated["hedges_g"] == pytest.approx(g.value)
    assert automated["margin"] == 1.0
    assert automated["noninferior"] is (welch.ci[1] < 1.0)
    assert automated["verdict"] == stats.verdict(welch.ci, 1.0)
    # nobody in monitoring has a 3-month value: nothing to estimate, and the report says so
    assert (monitoring["difference"], monitoring["ci"], monitoring["noninferior"]) == (None, None, None)
    assert monitoring["verdict"] == "not estimable"


def test_a_wider_margin_changes_the_verdict_but_not_the_interval(engine, cohort):
    narrow = report_of(engine, margin=0.1)["comparisons"][1]
    wide = report_of(engine, margin=5.0)["comparisons"][1]
    assert narrow["ci"] == wide["ci"]
    assert (narrow["noninferior"], wide["noninferior"]) == (False, True)


def test_the_reference_arm_can_be_chosen(engine, cohort):
    report = report_of(engine, reference_arm="automated")
    assert [c["arms"] for c in report["comparisons"]] == [["monitoring", "automated"], ["guided", "automated"]]
    assert report["comparisons"][1]["difference"] == pytest.approx(-6 / 4 - (-3 / 5))


def test_a_reference_arm_without_patients_is_refused_and_not_audited(app, engine, cohort):
    with engine.begin() as conn:
        conn.execute(sa.delete(Patient.__table__).where(Patient.__table__.c.feedback_mode == "guided"))
    with pytest.raises(ReportError, match="reference arm 'guided' has no enrolled patients"):
        report_of(engine, reference_arm="guided")
    assert rows(app, AuditEvent, AuditEvent.action == "report_outcomes") == []


def test_without_guided_patients_the_first_arm_is_the_reference(engine):
    insert_cohort(engine, [pains("automated", {0: 5, 13: 4}), pains("monitoring", {0: 5, 13: 5})])
    report = report_of(engine)
    assert report["reference_arm"] == "monitoring"
    assert [c["arms"] for c in report["comparisons"]] == [["automated", "monitoring"]]


def test_follow_ups_at_6_and_9_months_appear_only_where_data_exist(engine):
    insert_cohort(
        engine,
        [
            pains("guided", {0: 8, 13: 6, 26: 5}),
            pains("guided", {0: 7, 13: 5, 27: 4}),
            pains("automated", {0: 6, 13: 6, 25: 7}),
        ],
    )
    report = report_of(engine)
    assert [(f["months"], f["week"]) for f in report["follow_ups"]] == [(6, 26)]
    (six,) = report["follow_ups"]
    guided = next(a for a in six["arms"] if a["name"] == "guided")
    assert guided["n"] == 2
    assert guided["pain_change_mean"] == pytest.approx(((5 - 8) + (4 - 7)) / 2)
    assert six["comparisons"][0]["arms"] == ["automated", "guided"]


def test_the_primary_timepoint_can_be_6_months_with_3_months_as_a_follow_up(engine):
    insert_cohort(engine, [pains("guided", {0: 8, 13: 6, 26: 5}), pains("guided", {0: 7, 13: 5, 26: 4})])
    report = report_of(engine, months=6)
    assert report["primary"] == {"months": 6, "week": 26, "window": 2}
    assert arm(report, "guided")["pain_change_mean"] == pytest.approx(-3.0)
    assert [f["months"] for f in report["follow_ups"]] == [3]


def test_a_narrower_window_drops_values_further_from_the_target_week(engine, cohort):
    guided = arm(report_of(engine, window=0), "guided")
    assert guided["followup_weeks"] == {"13": 3}
    assert guided["n"] == 2  # only the patients with a week-13 value and a baseline


def test_mean_pain_by_week_uses_every_answered_value_of_that_week(engine, cohort):
    report = report_of(engine)
    week0 = {r["arm"]: r for r in report["pain_by_week"] if r["week"] == 0}
    assert week0["guided"]["n"] == 5
    assert week0["guided"]["mean"] == pytest.approx((8 + 6 + 7 + 5 + 9) / 5)
    assert week0["guided"]["ci"] == pytest.approx(list(stats.mean_ci([8, 6, 7, 5, 9]).ci))
    assert week0["monitoring"] == {"arm": "monitoring", "week": 0, "n": 1, "mean": 6.0, "ci": None}
    week13 = {r["arm"]: r["n"] for r in report["pain_by_week"] if r["week"] == 13}
    assert week13 == {"automated": 3, "guided": 3}  # the skipped answer is not a value


def test_adherence_counts_calls_check_ins_and_where_check_ins_stopped(engine):
    insert_cohort(
        engine,
        [
            Virtual(
                "guided",
                {
                    0: Week(pain=6, calls=("no-answer", "human")),
                    1: Week(pain=5, stop_at="steps_avg", calls=("machine", "human")),
                    2: Week(pain=None, skip=("pain_avg", "practice_days"), calls=("inbound",)),
                    3: Week(missed=True, calls=("no-answer",)),
                },
                unreached_calls={4: ("no-answer", "no-answer")},
            ),
            Virtual("guided", {0: Week(pain=4, stop_at="pain_avg")}),
        ],
    )
    report = report_of(engine)
    guided = adherence(report, "guided")
    assert guided["calls_placed"] == 8
    assert guided["calls_answered"] == 3
    assert guided["answer_rate"] == pytest.approx(3 / 8)
    assert (guided["calls_voicemail"], guided["calls_inbound"]) == (1, 1)
    assert (guided["checkins_started"], guided["checkins_completed"]) == (5, 2)
    assert (guided["checkins_partial"], guided["checkins_missed"]) == (2, 1)
    assert guided["stopped_at"] == {"pain_avg": 1, "steps_avg": 1}
    assert guided["skipped"] == {"pain_avg": 1, "sleep_quality": 0, "steps_avg": 0, "practice_days": 1, "safety": 0}
    assert guided["answered"] == {"pain_avg": 2, "sleep_quality": 3, "steps_avg": 2, "practice_days": 1, "safety": 2}
    assert guided["weeks_completed_distribution"] == {"0": 1, "2": 1}
    assert (guided["weeks_completed_mean"], guided["weeks_completed_median"]) == (1.0, 1.0)


def test_weekly_adherence_counts_only_patients_who_have_reached_the_week(engine):
    early = START - timedelta(weeks=10)
    insert_cohort(
        engine,
        [
            pains("automated", {0: 5, 1: 5, 2: 5}, start=early),  # started long ago: reached week 2 and beyond
            pains("automated", {0: 5}, start=early),
            pains("automated", {0: 5}, start=AS_OF.date() - timedelta(days=6)),  # six days in: week 0 only
        ],
    )
    by_week = {p["week"]: p for p in adherence(report_of(engine), "automated")["by_week"]}
    assert [by_week[w]["eligible"] for w in (0, 1, 2)] == [3, 2, 2]
    assert [by_week[w]["completed"] for w in (0, 1, 2)] == [3, 1, 1]
    assert by_week[1]["rate"] == pytest.approx(0.5)


def test_an_empty_database_gives_an_empty_report_not_an_error(engine):
    report = report_of(engine)
    assert (report["arms"], report["comparisons"], report["adherence"], report["reference_arm"]) == ([], [], [], None)


def test_every_report_writes_an_audit_row_with_counts_only(app, engine, cohort):
    report_of(engine)
    report_of(engine, margin=0.5)
    events = rows(app, AuditEvent, AuditEvent.action == "report_outcomes")
    assert len(events) == 2
    assert events[1].detail == {
        "months": 3,
        "margin": 0.5,
        "reference_arm": "guided",
        "patients": len(COHORT),
        "synthetic": False,
    }
    assert (events[1].actor, events[1].patient_id, events[1].at) == ("test", None, AS_OF)


def test_a_database_marked_synthetic_gives_a_report_labelled_synthetic(engine, cohort):
    assert report_of(engine)["synthetic"] is False
    assert report_of(engine, synthetic=True)["synthetic"] is True
    with engine.begin() as conn:
        mark_synthetic(conn, AS_OF, "simulator", preset="copes", seed=7, patients=125)
    report = report_of(engine)
    assert report["synthetic"] is True
    assert report["synthetic_sources"] == [{"preset": "copes", "seed": 7, "patients": 125}]


def test_the_report_runs_the_same_number_of_queries_for_ten_times_the_patients(engine):
    def statements_for(n: int) -> int:
        with engine.begin() as conn:
            conn.execute(sa.delete(Patient.__table__))
        insert_cohort(engine, [pains(("guided", "automated")[i % 2], {0: 6, 1: 5, 13: 4}) for i in range(n)])
        seen = []

        def count(_conn, _cursor, statement, *_args):
            seen.append(statement)

        sa.event.listen(engine, "before_cursor_execute", count)
        try:
            report = report_of(engine)
        finally:
            sa.event.remove(engine, "before_cursor_execute", count)
        assert sum(a["n"] for a in report["arms"]) == n
        return len(seen)

    assert statements_for(4) == statements_for(40)
