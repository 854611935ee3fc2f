"""The patient page, alerts and exports, as a therapist sees them."""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest

from ivr_cbt.dashboard import charts

from ..conftest import T0
from ..helpers import alerts_for
from .conftest import post_form

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def patient(add_patient, assign, therapist, call):
    """A patient with a baseline, two weeks of calls (one dropped and resumed) and a safety alert."""
    patient = add_patient(name="Pat Example", phone="+12025550142")
    assign(patient, therapist)
    call(patient, "1234,4,6,3000#,0,2", now=T0 - timedelta(weeks=1))  # week 0
    call(patient, "1234,6,hangup", now=T0)  # week 1, dropped
    call(patient, "1234,5,3500#,2,1,2", now=T0 + timedelta(hours=2))  # resumed; "yes" to safety
    call(patient, "1234,7,speech:six,4000#,0,2", now=T0 + timedelta(weeks=1))  # week 2
    return patient


def svg_charts(page: str) -> dict[str, ET.Element]:
    found = re.findall(r"<svg class=\"chart\".*?</svg>", page, flags=re.S)
    return {element.get("id"): element for element in map(ET.fromstring, found)}


def test_the_patient_page_shows_the_weekly_log(sign_in, therapist, patient):
    page = sign_in(therapist).get(f"/patients/{patient}").get_data(as_text=True)
    log = page[page.index('<table class="log">') : page.index("</table>", page.index('<table class="log">'))]
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", log, flags=re.S)]
    body = cells[cells.index("Completed") + 1 :]
    week2, week1, week0 = body[:9], body[9:18], body[18:27]
    assert week2[:8] == ["2", "2026-03-09", "complete", "7", "6", "4000", "0", "no"]
    assert week1[:8] == ["1", "2026-03-02", "complete", "6", "5", "3500", "2", "yes"]
    assert week0[:8] == ["0", "2026-02-23", "complete", "4", "6", "3000", "0", "no"]
    assert "pain 6 and 7 in weeks 1-2, baseline 4: up 2 or more two weeks running" in page
    assert "Pat Example" in page and "+12025550142" in page


def test_the_patient_page_draws_the_four_charts_as_svg(sign_in, therapist, patient):
    page = sign_in(therapist).get(f"/patients/{patient}").get_data(as_text=True)
    found = svg_charts(page)
    assert list(found) == ["chart-pain", "chart-sleep", "chart-steps", "chart-practice"]
    pain = found["chart-pain"]
    assert [c.find(f"{SVG}title").text for c in pain.iter(f"{SVG}circle")] == ["week 0: 4", "week 1: 6", "week 2: 7"]
    assert pain.find(f"{SVG}desc").text == "Pain by program week. week 0: 4; week 1: 6; week 2: 7"
    assert [t.text for t in pain.iter(f"{SVG}text") if t.get("class") == "chart-ref-label"] == [
        "baseline 4",
        "baseline + 2",
    ]
    bars = [r.find(f"{SVG}title").text for r in found["chart-practice"].iter(f"{SVG}rect")]
    assert bars == ["week 0: 0", "week 1: 2", "week 2: 0"]
    assert "http" not in page.replace("http://www.w3.org/2000/svg", "")  # nothing fetched from elsewhere


def test_a_line_is_broken_where_a_week_has_no_value():
    svg = ET.fromstring(charts.line_chart("c", "Pain", [(0, 4), (1, 5), (2, None), (3, 6), (4, 7)], weeks=5, y_max=10))
    lines = [p.get("points").split() for p in svg.iter(f"{SVG}polyline")]
    assert [len(points) for points in lines] == [2, 2]
    assert len(list(svg.iter(f"{SVG}circle"))) == 4


def test_chart_text_is_escaped():
    svg = charts.line_chart("c", "<script>", [(0, 1)], weeks=2, y_max=10)
    assert "<script>" not in svg and "&lt;script&gt;" in svg


def test_the_call_history_shows_each_calls_answers_and_outcome(sign_in, therapist, patient):
    page = sign_in(therapist).get(f"/patients/{patient}").get_data(as_text=True)
    calls = page[page.index("<tbody>", page.index('<table class="calls">')) :]
    rows = re.findall(r"<tr>(.*?)</tr>", calls, flags=re.S)
    assert len(rows) == 4
    newest, resumed, dropped, baseline = (re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", r)).strip() for r in rows)
    assert "5 answers recorded" in newest and "pain_avg: 7 sleep_quality: 6 (speech) steps_avg: 4000" in newest
    assert "4 answers recorded" in resumed and "safety: 1" in resumed
    assert "1 answer recorded" in dropped and "pain_avg: 6" in dropped
    assert "Mon 02 Mar 2026 10:00 EST" in dropped


def test_an_alert_is_acknowledged_with_a_note_and_stays_in_the_history(app, sign_in, therapist, patient):
    client = sign_in(therapist)
    (alert,) = alerts_for(app, patient)
    page = client.get("/alerts").get_data(as_text=True)
    assert f'id="alert-{alert.id}"' in page and "Pat Example" in page
    assert post_form(client, f"/alerts/{alert.id}/acknowledge", {"note": ""}, page="/alerts").status_code == 303
    assert alerts_for(app, patient)[0].acknowledged_at is None  # a note is required
    response = post_form(
        client, f"/alerts/{alert.id}/acknowledge", {"note": "Called her; safe, plan made."}, page="/alerts"
    )
    assert response.status_code == 303
    (alert,) = alerts_for(app, patient)
    assert alert.acknowledged_by == therapist.email and alert.note == "Called her; safe, plan made."
    page = client.get("/alerts").get_data(as_text=True)
    assert "No open alerts." in page and "Called her; safe, plan made." in page
    again = post_form(client, f"/alerts/{alert.id}/acknowledge", {"note": "second"}, page="/alerts")
    assert again.status_code == 303 and alerts_for(app, patient)[0].note == "Called her; safe, plan made."
    caseload = client.get("/").get_data(as_text=True)
    assert "flag-safety" not in caseload and "flag-pain_up" in caseload  # the latest answer (week 2) was "no"


def test_the_weekly_log_exports_as_csv_and_json(sign_in, therapist, patient):
    client = sign_in(therapist)
    response = client.get(f"/patients/{patient}/export/csv")
    assert response.headers["Content-Disposition"] == f'attachment; filename="patient-{patient}-weekly-log.csv"'
    table = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [(r["week"], r["status"], r["pain_avg"], r["safety"]) for r in table] == [
        ("0", "complete", "4", "2"),
        ("1", "complete", "6", "1"),
        ("2", "complete", "7", "2"),
    ]
    rows = client.get(f"/patients/{patient}/export/json").get_json()
    assert rows[1]["answers"] == {"pain_avg": 6, "sleep_quality": 5, "steps_avg": 3500, "practice_days": 2, "safety": 1}
    assert rows[1]["week_start"] == "2026-03-02" and rows[1]["patient_id"] == patient


def test_a_missed_week_is_a_row_of_its_own(sign_in, therapist, add_patient, assign, call, clock):
    late = add_patient()
    assign(late, therapist)
    call(late, "1234,5,7,4200#,3,2", now=T0 + timedelta(weeks=1))  # week 2; weeks 0 and 1 missed
    rows = sign_in(therapist).get(f"/patients/{late}/export/json").get_json()
    assert [(r["week"], r["status"]) for r in rows] == [(0, "missed"), (1, "missed"), (2, "complete")]


def test_the_fhir_export_is_a_bundle_of_observations_with_loinc_pain(app, sign_in, therapist, patient):
    response = sign_in(therapist).get(f"/patients/{patient}/export/fhir")
    assert response.mimetype == "application/fhir+json"
    bundle = response.get_json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    observations = [e["resource"] for e in bundle["entry"]]
    assert len(observations) == 15 and {o["resourceType"] for o in observations} == {"Observation"}
    assert all(e["fullUrl"] == f"urn:uuid:{e['resource']['id']}" for e in bundle["entry"])
    pain = [o for o in observations if o["code"]["coding"][0]["code"] == "72514-3"]
    assert [o["valueInteger"] for o in pain] == [4, 6, 7]
    assert pain[0]["code"]["coding"][0]["system"] == "http://loinc.org"
    assert pain[1]["effectivePeriod"] == {"start": "2026-03-02T00:00:00-05:00", "end": "2026-03-09T00:00:00-04:00"}
    assert pain[1]["subject"]["identifier"]["value"] == str(patient)
    assert pain[1]["status"] == "final" and pain[1]["category"][0]["coding"][0]["code"] == "survey"
    steps = next(o for o in observations if o["code"]["coding"][0]["code"] == "steps_avg")
    assert steps["valueQuantity"] == {
        "value": 3000,
        "unit": "steps per day",
        "system": "http://unitsofmeasure.org",
        "code": "{steps}/d",
    }
    safety = [o for o in observations if o["code"]["coding"][0]["code"] == "safety"]
    assert [o["valueCodeableConcept"]["text"] for o in safety] == ["no", "yes", "no"]
    text = response.get_data(as_text=True)
    assert "Pat Example" not in text and "2025550142" not in text


def test_fhir_ids_are_stable_across_exports(sign_in, therapist, patient):
    client = sign_in(therapist)
    ids = [[e["fullUrl"] for e in client.get(f"/patients/{patient}/export/fhir").get_json()["entry"]] for _ in range(2)]
    assert ids[0] == ids[1] and len(set(ids[0])) == 15


def test_the_caseload_export_holds_every_patients_weeks(sign_in, therapist, patient, add_patient, assign):
    other = add_patient()
    assign(other, therapist)
    client = sign_in(therapist)
    rows = client.get("/caseload/export/json").get_json()
    assert sorted({(r["patient_id"], r["week"]) for r in rows}) == [
        (patient, 0),
        (patient, 1),
        (patient, 2),
        (other, 0),
        (other, 1),
        (other, 2),
    ]
    assert client.get("/caseload/export/xml").status_code == 404
