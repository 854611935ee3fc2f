"""The pure engine: start, resume with input, tapered re-prompts, skips, repeat, speech confirmation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ivr_cbt.callflow import EngineError, load_flow, resume, spec, start

FLOW = load_flow(Path(__file__).resolve().parent.parent / "flows" / "weekly_checkin.yaml")
SETTINGS = {"crisis_line": "988"}


def prompts(step: spec.Step) -> list[str]:
    return [o.id for o in step.outputs if isinstance(o, spec.Prompt)]


def effects(step: spec.Step, kind) -> list:
    return [e for e in step.effects if isinstance(e, kind)]


def go(state_or_step, *events):
    """Resume with each event in turn; return the last step. Verifications pass automatically."""
    step = state_or_step
    for event in events:
        step = resume(FLOW, step.state, event, settings=SETTINGS)
        # The state must survive the database's JSON column.
        assert json.loads(json.dumps(step.state)) == step.state
    return step


def identified(answered=(), feedback=False, language="en"):
    first = start(FLOW, caller_known=True, language=language, settings=SETTINGS)
    step = go(first, spec.Digits("1234"))
    assert effects(step, spec.VerifyIdentity) == [spec.VerifyIdentity(None, "1234")]
    return go(step, spec.Identified(frozenset(answered), feedback, language, slots={"skill": "skill_stretching"}))


def test_a_known_caller_is_greeted_and_asked_for_the_pin_before_anything_clinical():
    step = start(FLOW, caller_known=True, language="en", settings=SETTINGS)
    assert prompts(step) == ["greeting", "ask_pin"]
    assert step.listen == spec.Listen(max_digits=4, finish_on_key="#", timeout=7, speech=False)


def test_an_unknown_caller_is_asked_for_a_patient_code_then_the_pin():
    step = start(FLOW, caller_known=False, language="en", settings=SETTINGS)
    assert prompts(step) == ["greeting", "ask_code"]
    step = go(step, spec.Digits("482913"))
    assert prompts(step) == ["ask_pin"]
    step = go(step, spec.Digits("1234"))
    assert effects(step, spec.VerifyIdentity) == [spec.VerifyIdentity("482913", "1234")]
    assert step.awaiting_host and step.outputs == ()


def test_after_verification_the_check_in_starts_with_average_pain():
    step = identified()
    assert prompts(step) == ["intro_checkin", "ask_pain_avg"]
    assert step.listen == spec.Listen(max_digits=2, finish_on_key="#", timeout=5, speech=True)


def test_three_wrong_pins_end_the_call_politely_with_different_prompts_each_time():
    step = start(FLOW, caller_known=True, language="en", settings=SETTINGS)
    seen = []
    for _ in range(3):
        step = go(step, spec.Digits("0000"), spec.Rejected())
        seen.append(prompts(step))
    assert seen == [["pin_wrong_1", "ask_pin"], ["pin_wrong_2", "ask_pin"], ["goodbye_unverified"]]
    assert effects(step, spec.IdentityFailed) == [spec.IdentityFailed("wrong")]
    assert step.ended and isinstance(step.outputs[-1], spec.Hangup)


def test_a_pin_of_the_wrong_length_counts_as_a_wrong_try_without_asking_the_host():
    step = go(start(FLOW, caller_known=True, language="en", settings=SETTINGS), spec.Digits("12"))
    assert prompts(step) == ["pin_wrong_1", "ask_pin"]
    assert effects(step, spec.VerifyIdentity) == []


def test_a_full_check_in_records_each_item_in_order():
    step = go(identified(), spec.Digits("5"), spec.Digits("7"), spec.Digits("4200"), spec.Digits("3"))
    step2 = go(step, spec.Digits("2"))
    assert prompts(step2) == ["goodbye_stop_offer"]
    assert step2.listen == spec.Listen(max_digits=1, finish_on_key="", timeout=4)
    step2 = go(step2, spec.NoInput())
    assert step2.ended and step2.outputs == (spec.Hangup(),)
    answered = step2.state["answered"]
    assert sorted(answered) == sorted(FLOW.item_keys())


def test_each_answer_is_recorded_with_its_raw_input_and_mode():
    step = go(identified(), spec.Digits("10"))
    assert effects(step, spec.RecordAnswer) == [spec.RecordAnswer("pain_avg", 10, "10", "dtmf")]
    assert prompts(step) == ["ask_sleep_quality"]


@pytest.mark.parametrize("bad", ["11", "99", "#"])
def test_an_out_of_range_answer_is_re_asked(bad):
    step = go(identified(), spec.Digits(bad))
    assert prompts(step) == ["invalid_scale_1", "ask_pain_avg"]
    assert effects(step, spec.RecordAnswer) == []


def test_re_prompts_taper_and_the_item_is_skipped_after_the_last_one():
    step = identified()
    step = go(step, spec.NoInput())
    assert prompts(step) == ["noinput_1", "ask_pain_avg"]
    step = go(step, spec.Digits("12"))
    assert prompts(step) == ["invalid_scale_1", "ask_pain_avg"]
    step = go(step, spec.NoInput())
    assert prompts(step) == ["noinput_2", "ask_pain_avg"]
    step = go(step, spec.Digits("13"))
    assert prompts(step) == ["invalid_scale_2", "ask_pain_avg"]
    step = go(step, spec.Digits("14"))
    assert effects(step, spec.RecordAnswer) == [spec.RecordAnswer("pain_avg", None, "14", "none")]
    assert prompts(step) == ["ask_sleep_quality"]


def test_silence_three_times_skips_the_item():
    step = go(identified(), spec.NoInput(), spec.NoInput(), spec.NoInput())
    (skipped,) = effects(step, spec.RecordAnswer)
    assert skipped.skipped and skipped.item == "pain_avg" and skipped.raw is None
    assert prompts(step) == ["ask_sleep_quality"]


def test_star_repeats_the_question_without_counting_as_a_mistake():
    step = go(identified(), spec.Digits("*"), spec.Digits("*"), spec.Digits("*"))
    assert prompts(step) == ["ask_pain_avg"]
    assert step.state["invalid"] == 0 and step.state["noinput"] == 0
    step = go(step, spec.Digits("4"))
    assert effects(step, spec.RecordAnswer)[0].value == 4


def test_a_resumed_call_starts_at_the_first_unanswered_item():
    step = identified(answered={"pain_avg", "sleep_quality"})
    assert prompts(step) == ["intro_resume", "ask_steps_avg"]


def test_a_complete_week_is_acknowledged_and_nothing_is_asked_again():
    step = identified(answered=set(FLOW.item_keys()))
    assert prompts(step) == ["already_done", "goodbye_stop_offer"]
    assert effects(step, spec.RecordAnswer) == []


def test_feedback_waiting_plays_after_the_safety_question_and_waits_for_its_end():
    step = identified(answered=set(FLOW.item_keys()) - {"safety"}, feedback=True)
    step = go(step, spec.Digits("2"))
    assert step.outputs == (spec.Prompt("feedback_intro"), spec.PlayFeedback())
    assert step.listen == spec.AfterPlayback() and effects(step, spec.FeedbackHeard) == []
    heard = go(step, spec.Played())
    assert effects(heard, spec.FeedbackHeard) == [spec.FeedbackHeard()]
    assert prompts(heard) == ["feedback_menu"] and heard.listen.max_digits == 1


def test_one_plays_the_message_again_and_eight_at_its_menu_opts_out():
    step = go(identified(answered=set(FLOW.item_keys()), feedback=True), spec.Played())
    again = go(step, spec.Digits("1"))
    assert again.outputs == (spec.Prompt("feedback_intro"), spec.PlayFeedback())
    stopped = go(again, spec.Played(), spec.Digits("8"))
    assert effects(stopped, spec.HostAction) == [spec.HostAction("opt_out", "feedback_menu", "opted_out")]
    assert prompts(stopped) == ["opted_out"] and stopped.ended


def test_without_a_message_the_call_goes_straight_to_the_offer_to_stop():
    step = go(identified(answered=set(FLOW.item_keys()) - {"safety"}), spec.Digits("2"))
    assert not any(isinstance(o, spec.PlayFeedback) for o in step.outputs)
    assert prompts(step) == ["goodbye_stop_offer"]


def test_the_practice_question_names_this_weeks_skill_from_the_hosts_slot():
    step = identified(answered={"pain_avg", "sleep_quality", "steps_avg"})
    assert step.outputs[-3:] == (
        spec.Prompt("ask_practice_days"),
        spec.Prompt("skill_stretching", "?"),
        spec.Prompt("ask_practice_days_keys"),
    )


def test_a_slot_the_host_did_not_fill_is_a_host_error():
    first = go(start(FLOW, caller_known=True, language="en", settings=SETTINGS), spec.Digits("1234"))
    step = go(first, spec.Identified(frozenset({"pain_avg", "sleep_quality"})))
    with pytest.raises(EngineError, match="slot 'skill'"):
        go(step, spec.Digits("4200"))


def test_safety_yes_opens_an_alert_gives_the_crisis_line_and_offers_to_connect_at_once():
    step = go(identified(answered=set(FLOW.item_keys()) - {"safety"}), spec.Digits("1"))
    assert effects(step, spec.OpenAlert) == [spec.OpenAlert("safety")]
    assert spec.SayValue("988", "digits") in step.outputs
    assert prompts(step) == ["crisis_line_is", "crisis_not_monitored", "crisis_offer"]
    assert step.listen.max_digits == 1
    connect = go(step, spec.Digits("1"))
    assert spec.DialOut("988") in connect.outputs
    assert connect.outputs[-1] == spec.Hangup()


def test_declining_the_crisis_line_continues_to_goodbye():
    step = go(identified(answered=set(FLOW.item_keys()) - {"safety"}), spec.Digits("1"), spec.Digits("2"))
    assert prompts(step) == ["goodbye_stop_offer"]
    assert not any(isinstance(o, spec.DialOut) for o in step.outputs)


def test_silence_at_the_crisis_offer_repeats_the_line_and_continues():
    step = go(identified(answered=set(FLOW.item_keys()) - {"safety"}), spec.Digits("1"), spec.NoInput(), spec.NoInput())
    assert prompts(step) == ["crisis_reminder", "goodbye_stop_offer"]
    assert spec.SayValue("988", "digits") in step.outputs


def test_the_crisis_line_comes_from_settings():
    step = identified(answered=set(FLOW.item_keys()) - {"safety"})
    step = resume(FLOW, step.state, spec.Digits("1"), settings={"crisis_line": "08001111"})
    assert spec.SayValue("08001111", "digits") in step.outputs


def test_a_confident_speech_answer_is_recorded_directly():
    step = go(identified(), spec.SpeechInput("seven", 0.91))
    assert effects(step, spec.RecordAnswer) == [spec.RecordAnswer("pain_avg", 7, "seven", "speech", 0.91)]


def test_a_low_confidence_speech_answer_is_confirmed_on_the_keypad():
    step = go(identified(), spec.SpeechInput("I think seven", 0.41))
    assert effects(step, spec.RecordAnswer) == []
    assert prompts(step) == ["speech_heard", "speech_confirm"]
    assert spec.SayValue("7", end_sentence=True) in step.outputs
    confirmed = go(step, spec.Digits("1"))
    assert effects(confirmed, spec.RecordAnswer) == [spec.RecordAnswer("pain_avg", 7, "I think seven", "speech", 0.41)]


def test_a_rejected_speech_answer_is_asked_again_on_the_keypad_only():
    step = go(identified(), spec.SpeechInput("seven", 0.3), spec.Digits("2"))
    assert prompts(step) == ["speech_rejected", "ask_pain_avg"]
    assert step.listen.speech is False
    step = go(step, spec.Digits("6"))
    assert effects(step, spec.RecordAnswer)[0].value == 6


def test_spanish_speech_is_read_as_spanish_numbers():
    step = go(identified(language="es"), spec.SpeechInput("siete", 0.95))
    assert effects(step, spec.RecordAnswer)[0].value == 7


@pytest.mark.parametrize("text", ["blue", "five or six", ""])
def test_speech_that_is_not_one_number_is_invalid(text):
    step = go(identified(), spec.SpeechInput(text, 0.95))
    assert prompts(step) == ["invalid_scale_1", "ask_pain_avg"]


def test_the_engine_refuses_calls_it_cannot_honour():
    step = start(FLOW, caller_known=True, language="en", settings=SETTINGS)
    with pytest.raises(EngineError, match="did not ask"):
        resume(FLOW, step.state, spec.Identified(), settings=SETTINGS)
    waiting = go(step, spec.Digits("1234"))
    with pytest.raises(EngineError, match="waiting for the host"):
        resume(FLOW, waiting.state, spec.Digits("5"), settings=SETTINGS)
    ended = go(step, *([spec.NoInput()] * 3))
    with pytest.raises(EngineError, match="already ended"):
        resume(FLOW, ended.state, spec.Digits("1"), settings=SETTINGS)


def test_the_engine_imports_no_flask_sqlalchemy_or_twilio():
    import ast

    package = Path(__file__).resolve().parent.parent / "ivr_cbt" / "callflow"
    imported = set()
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
    assert imported & {"flask", "sqlalchemy", "twilio", "werkzeug"} == set()
    assert "yaml" in imported  # the check reads real imports


def test_every_call_ends_with_the_offer_to_stop_and_eight_opts_out_at_once():
    step = go(identified(answered=set(FLOW.item_keys()) - {"safety"}), spec.Digits("2"))
    assert prompts(step) == ["goodbye_stop_offer"]
    stopped = go(step, spec.Digits("8"))
    assert effects(stopped, spec.HostAction) == [spec.HostAction("opt_out", "stop_offer", "opted_out")]
    assert prompts(stopped) == ["opted_out"] and stopped.ended


@pytest.mark.parametrize("event", [spec.Digits("5"), spec.NoInput()])
def test_anything_but_eight_at_the_offer_just_ends_the_call(event):
    step = go(identified(answered=set(FLOW.item_keys())), event)
    assert effects(step, spec.HostAction) == []
    assert step.ended and step.outputs == (spec.Hangup(),)
