"""The practice phone: a whole check-in taken turn by turn through the page's JSON API."""

from __future__ import annotations

import pytest

from ..helpers import audit_actions, checkins
from .conftest import csrf_token


@pytest.fixture
def phone(signed_in, therapist, add_patient, assign):
    """(client, patient, post) where post(path, json) sends the page's CSRF header."""
    patient = add_patient()
    assign(patient, therapist)
    headers = {"X-CSRFToken": csrf_token(signed_in.get("/practice/"))}

    def post(path, body):
        return signed_in.post(path, json=body, headers=headers)

    return signed_in, patient, post


def play(post, patient: int, actions: list[str]) -> list[dict]:
    turns = [post("/practice/calls", {"patient_id": patient}).get_json()]
    for action in actions:
        response = post("/practice/calls/step", {"state": turns[-1]["state"], "action": action})
        assert response.status_code == 200, response.get_data(as_text=True)
        turns.append(response.get_json())
    return turns


def test_a_whole_check_in_on_the_practice_phone_is_stored_like_any_call(app, phone):
    client, patient, post = phone
    turns = play(post, patient, ["1234", "5#", "7#", "4200#", "3", "2", "silence"])
    assert turns[0]["lines"] == [
        {
            "speaker": "APP",
            "text": "Hello. This is the automated check-in line from your care team. Please enter your four-digit PIN.",
        }
    ]
    assert turns[0]["listening"] == {
        "input": ["dtmf"],
        "num_digits": 4,
        "finish_on_key": "#",
        "timeout": 7,
        "language": "en-US",
    }
    assert [t["status"] for t in turns] == ["in-progress"] * 7 + ["completed"]
    assert turns[-1]["state"] is None and turns[-1]["listening"] is None
    assert turns[-2]["lines"][-1]["text"].endswith("press 8 now. Otherwise, goodbye.")
    (checkin,) = checkins(app, patient)
    assert checkin["status"] == "complete"
    assert checkin["answers"] == {"pain_avg": 5, "sleep_quality": 7, "steps_avg": 4200, "practice_days": 3, "safety": 2}
    actions = audit_actions(app, patient)
    assert actions.count("practice_call_started") == 1 and actions.count("practice_call_ended") == 1


def test_speech_silence_and_hanging_up_work_like_the_offline_phone(app, phone):
    client, patient, post = phone
    turns = play(post, patient, ["1234", "speech:six", "silence", "hangup"])
    assert turns[2]["lines"][0] == {"speaker": "CALLER", "text": 'says "six" (confidence 0.92)'}
    assert turns[3]["lines"][0] == {"speaker": "CALLER", "text": "(silence)"}
    assert "did not hear" in turns[3]["lines"][1]["text"]
    assert turns[-1]["status"] == "completed" and turns[-1]["state"] is None
    (checkin,) = checkins(app, patient)
    assert checkin["status"] == "partial" and checkin["answers"]["pain_avg"] == 6


@pytest.mark.parametrize("action", ["five", "1,2", "speech:", "x" * 40, ""])
def test_a_malformed_action_is_refused(phone, action):
    client, patient, post = phone
    (turn,) = play(post, patient, [])
    assert post("/practice/calls/step", {"state": turn["state"], "action": action}).status_code == 400


def test_a_tampered_state_is_refused(phone):
    client, patient, post = phone
    (turn,) = play(post, patient, [])
    state = turn["state"][:-3] + ("AAA" if not turn["state"].endswith("AAA") else "BBB")
    assert post("/practice/calls/step", {"state": state, "action": "1234"}).status_code == 400


def test_the_practice_page_lists_only_the_therapists_patients(signed_in, phone, add_patient):
    add_patient(name="Someone Else")
    page = signed_in.get("/practice/").get_data(as_text=True)
    assert "Test Patient" in page and "Someone Else" not in page
    assert 'src="/dashboard/static/practice.js"' in page
