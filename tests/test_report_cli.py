"""`manage.py report outcomes`: formats, files, plots, labels, audit and privacy; and a report of real calls."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
import sqlalchemy as sa

from ivr_cbt import db
from ivr_cbt.models import AuditEvent, Patient
from ivr_cbt.report import mark_synthetic

from .conftest import T0
from .helpers import rows
from .report_data import Virtual, Week, insert_cohort, pains

SVG = "{http://www.w3.org/2000/svg}svg"
COHORT = [
    pains("guided", {0: 8, 1: 7, 13: 5}),
    pains("guided", {0: 6, 1: 6, 13: 4}),
    pains("guided", {0: 7, 1: 7, 13: 6}),
    pains("automated", {0: 6, 1: 6, 13: 5}),
    pains("automated", {0: 7, 1: 5, 13: 6}),
    pains("automated", {0: 9, 13: 5}),
    Virtual("monitoring", {0: Week(pain=6), 1: Week(pain=6, stop_at="sleep_quality")}),
]


@pytest.fixture
def cohort(app):
    return insert_cohort(app.extensions["db_engine"], COHORT)


def invoke(runner, *args):
    return runner.invoke(args=["report", "outcomes", *args])


def test_json_output_has_the_fields_other_tools_read(runner, cohort):
    result = invoke(runner, "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert [a["name"] for a in report["arms"]] == ["monitoring", "automated", "guided"]
    guided = report["arms"][2]
    assert guided["n"] == 3
    assert guided["pain_change_mean"] == pytest.approx(-2.0)
    low, high = guided["pain_change_ci"]
    assert low < -2.0 < high
    assert guided["responders_30pct"] == pytest.approx(2 / 3)  # 8 -> 5 and 6 -> 4, not 7 -> 6
    (automated,) = [c for c in report["comparisons"] if c["arms"] == ["automated", "guided"]]
    assert automated["difference"] == pytest.approx(-2.0 - (-2.0))
    assert len(automated["ci"]) == 2
    assert automated["margin"] == 1.0
    assert isinstance(automated["noninferior"], bool)
    assert isinstance(automated["hedges_g"], float)
    assert report["plots"] == []


def test_options_reach_the_report(runner, cohort):
    result = invoke(runner, "--format", "json", "--margin", "2.5", "--reference-arm", "automated", "--window", "0")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["reference_arm"] == "automated"
    assert {c["margin"] for c in report["comparisons"]} == {2.5}
    assert report["primary"] == {"months": 3, "week": 13, "window": 0}


def test_markdown_shows_the_primary_outcome_comparisons_and_adherence(runner, cohort):
    result = invoke(runner)
    assert result.exit_code == 0, result.output
    text = result.output
    assert text.startswith("# Outcome report\n")
    for heading in (
        "## Primary outcome: pain change at 3 months",
        "## Mean pain by program week",
        "## Retention and adherence",
        "## Drop-off per question",
        "## Definitions",
    ):
        assert f"\n{heading}\n" in text
    assert "| guided | 3 | 3 | 3 | 3 | 7.00 | 5.00 | -2.00 [" in text
    assert "| automated - guided | 0.00 [" in text
    # stopped / skipped / answered per arm: monitoring's week-1 call ended before the sleep question
    assert "\n| sleep_quality | 1 / 0 / 1 | 0 / 0 / 8 | 0 / 0 / 9 |\n" in text
    assert "SYNTHETIC" not in text
    assert "![" not in text  # no figures without --out


def test_a_reference_arm_nobody_is_in_is_refused_with_a_message(runner, app):
    insert_cohort(app.extensions["db_engine"], [pains("automated", {0: 5, 13: 4})])
    result = invoke(runner, "--reference-arm", "guided")
    assert result.exit_code == 1
    assert "reference arm 'guided' has no enrolled patients" in result.output


def test_out_writes_the_document_and_svg_plots_it_links(runner, cohort, tmp_path):
    out = tmp_path / "report"
    result = invoke(runner, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "adherence_by_week.svg",
        "outcomes.md",
        "pain_by_week.svg",
        "responders.svg",
    ]
    text = (out / "outcomes.md").read_text()
    for name in ("pain_by_week.svg", "responders.svg", "adherence_by_week.svg"):
        assert f"]({name})" in text
        assert ET.parse(out / name).getroot().tag == SVG


def test_png_plots_are_png_files(runner, cohort, tmp_path):
    result = invoke(runner, "--format", "json", "--plots", "png", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "outcomes.json").read_text())
    assert report["plots"] == ["adherence_by_week.png", "pain_by_week.png", "responders.png"]
    for name in report["plots"]:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_html_is_one_self_contained_page_with_its_figures_inline(runner, cohort, tmp_path):
    out = tmp_path / "html"
    result = invoke(runner, "--format", "html", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert [p.name for p in out.iterdir()] == ["outcomes.html"]
    page = (out / "outcomes.html").read_text()
    assert page.count("<svg") == 3
    assert page.count("<table>") >= 5
    for outside in ("<img", "src=", "<link", "<script", "@import"):
        assert outside not in page


def test_plots_none_writes_the_document_only(runner, cohort, tmp_path):
    result = invoke(runner, "--format", "html", "--plots", "none", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "<svg" not in (tmp_path / "outcomes.html").read_text()


def test_the_same_data_gives_byte_identical_reports_and_plots(runner, cohort, tmp_path):
    for run in ("a", "b"):
        assert invoke(runner, "--format", "html", "--out", str(tmp_path / run)).exit_code == 0
        assert invoke(runner, "--out", str(tmp_path / run / "md")).exit_code == 0
    for name in ("outcomes.html", "md/outcomes.md", "md/pain_by_week.svg", "md/responders.svg"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_a_synthetic_database_is_labelled_in_every_format_and_figure(runner, app, cohort, tmp_path):
    with app.extensions["db_engine"].begin() as conn:
        mark_synthetic(conn, T0, "simulator", preset="copes", seed=3)
    assert invoke(runner, "--out", str(tmp_path)).exit_code == 0
    text = (tmp_path / "outcomes.md").read_text()
    assert text.startswith("# Outcome report (SYNTHETIC DATA)\n")
    assert "simulated cohort (preset copes, seed 3)" in text
    for name in ("pain_by_week.svg", "responders.svg", "adherence_by_week.svg"):
        assert "SYNTHETIC DATA" in (tmp_path / name).read_text()
    assert json.loads(invoke(runner, "--format", "json").output)["synthetic"] is True
    assert "SYNTHETIC DATA" in invoke(runner, "--format", "html", "--plots", "none").output


def test_the_synthetic_option_labels_a_database_without_a_mark(runner, cohort):
    assert json.loads(invoke(runner, "--format", "json", "--synthetic").output)["synthetic"] is True


def test_every_run_is_audited_and_the_report_holds_no_names_or_numbers(runner, app, cohort, tmp_path):
    outputs = [invoke(runner, "--format", fmt).output for fmt in ("md", "json")]
    assert invoke(runner, "--format", "html", "--out", str(tmp_path)).exit_code == 0
    outputs.append((tmp_path / "outcomes.html").read_text())
    events = rows(app, AuditEvent, AuditEvent.action == "report_outcomes")
    assert len(events) == 3
    assert all(e.actor.startswith("cli:") and e.patient_id is None for e in events)
    with app.app_context():
        people = db.session().execute(sa.select(Patient.name, Patient.phone, Patient.code)).all()
    assert len(people) == len(COHORT)
    for output in outputs:
        for name, phone, code in people:
            assert name not in output
            assert phone not in output and phone.lstrip("+") not in output
            assert f'"{code}"' not in output


# --- real calls ------------------------------------------------------------------------------------------


def test_a_report_of_real_calls_through_the_webhooks(app, add_patient, call, runner):
    start = T0.date()  # T0 is in week 0 for these patients
    patients = {arm: [add_patient(start=start) for _ in range(2)] for arm in ("automated", "guided")}
    with app.extensions["db_engine"].begin() as conn:
        conn.execute(
            sa.update(Patient.__table__)
            .where(Patient.__table__.c.id.in_(patients["guided"]))
            .values(feedback_mode="guided")
        )
    week13 = T0 + timedelta(weeks=13)
    scripts = {"automated": (("7", "6"), ("6", "6")), "guided": (("8", "4"), ("6", "5"))}
    for arm, ids in patients.items():
        for patient_id, (baseline, followup) in zip(ids, scripts[arm], strict=True):
            assert call(patient_id, f"1234,{baseline},7,4200#,3,2", now=T0).status == "completed"
            assert call(patient_id, f"1234,{followup},7,4200#,3,2", now=week13).status == "completed"
    hung_up = add_patient(start=start)
    assert call(hung_up, "1234,5,hangup", now=T0).status == "completed"

    result = runner.invoke(args=["report", "outcomes", "--format", "json", "--as-of", week13.isoformat()])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    arms = {a["name"]: a for a in report["arms"]}
    assert (arms["guided"]["n"], arms["guided"]["pain_change_mean"]) == (2, pytest.approx(-2.5))
    assert (arms["automated"]["n_enrolled"], arms["automated"]["n"]) == (3, 2)
    assert arms["automated"]["pain_change_mean"] == pytest.approx(-0.5)
    assert (arms["guided"]["responders_30pct_count"], arms["guided"]["responders_30pct_n"]) == (1, 2)
    adherence = {a["arm"]: a for a in report["adherence"]}
    assert adherence["guided"]["checkins_completed"] == 4
    assert adherence["automated"]["stopped_at"] == {"sleep_quality": 1}
    assert adherence["automated"]["calls_placed"] == 5


def test_an_empty_database_gives_a_short_report_and_no_plots(runner, tmp_path):
    result = invoke(runner, "--out", str(tmp_path / "empty"))
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "empty").iterdir()] == ["outcomes.md"]
    assert "No patients are enrolled: nothing to report." in (tmp_path / "empty" / "outcomes.md").read_text()
