"""Calls played one turn at a time tell the same story as calls played in one go."""

from __future__ import annotations

import pytest

from ivr_cbt.simulator import ScriptedCaller, interactive
from ivr_cbt.simulator.callers import parse_action
from ivr_cbt.simulator.runner import make_phone, place_call, simulated_time

from .conftest import T0


@pytest.mark.parametrize(
    "script",
    [
        "1234,5,7,4200#,3,2",
        "1234,6,hangup",
        "1234,12,4,99,*,7,speech:three thousand@0.45,1,9,8,9,2",
        "1234,5,7,4200#,3,1,1",
        "0000,1111,2222",
    ],
)
def test_an_interactive_call_has_the_same_transcript_as_a_scripted_one(make_app, add_patient, script):
    first, second = add_patient(), add_patient()
    app = make_app()
    with simulated_time(app, T0) as clock:
        scripted = make_phone(app, clock=clock).call(ScriptedCaller.parse(script), **place_call(app, first, now=T0))
    with simulated_time(app, T0) as clock:
        phone = make_phone(app, clock=clock)
        turn = interactive.start(phone, **place_call(app, second, now=T0))
        lines = list(turn.lines)
        actions = [parse_action(token) for token in script.split(",")]
        while turn.state is not None:
            turn = interactive.resume(phone, turn.state, actions.pop(0) if actions else parse_action("hangup"))
            lines += turn.lines
    assert [(line.speaker, line.text) for line in lines] == [(line.speaker, line.text) for line in scripted.transcript]
    assert (turn.status, turn.duration_s) == (scripted.status, scripted.duration_s)


def test_the_state_between_turns_is_plain_json_data(app, patient_id):
    import json

    turn = interactive.start(make_phone(app), **place_call(app, patient_id, now=T0))
    assert json.loads(json.dumps(turn.state)) == turn.state
    assert turn.listening.num_digits == 4
