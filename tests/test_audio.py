"""`prompts render-audio`: prompts without a recording become espeak-ng clips, recordings are left alone,
and a deployment can then run on clips end to end."""

from __future__ import annotations

import json
import os
import shutil
import wave
from datetime import timedelta
from pathlib import Path

import pytest

from ivr_cbt.audio import MANIFEST, AudioError, number_vocabulary, render_language
from ivr_cbt.feedback import generate
from ivr_cbt.prompts import Catalogue, number_words

from .conftest import T0

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def espeak():
    if shutil.which("espeak-ng") is None:
        if os.environ.get("CI"):
            pytest.fail("the audio tests need espeak-ng (make test installs it as root)")
        pytest.skip("no espeak-ng: run `make test` as root, or apt-get install espeak-ng")


@pytest.fixture
def prompts(tmp_path) -> Path:
    copy = tmp_path / "prompts"
    shutil.copytree(ROOT / "prompts", copy)
    return copy


def render(make_app, prompts, *args):
    app = make_app(PROMPTS_DIR=str(prompts))
    return app, app.test_cli_runner().invoke(args=["prompts", "render-audio", *args])


def test_render_audio_makes_a_clip_for_each_prompt_asked_and_keeps_a_manifest(espeak, make_app, prompts):
    _, result = render(make_app, prompts, "--language", "en", "--prompt", "greeting", "--prompt", "ask_pin")
    assert result.exit_code == 0, result.output
    assert "en: rendered 2, up to date 0, recordings left alone 0" in result.output
    audio = prompts / "en" / "audio"
    for prompt_id in ("greeting", "ask_pin"):
        with wave.open(str(audio / f"{prompt_id}.wav")) as clip:
            assert clip.getnchannels() == 1 and clip.getnframes() / clip.getframerate() > 1.0
    assert sorted(json.loads((audio / MANIFEST).read_text())) == ["ask_pin", "greeting"]
    _, again = render(make_app, prompts, "--language", "en", "--prompt", "greeting")
    assert "rendered 0, up to date 1" in again.output


def test_a_changed_text_is_rendered_again_and_a_human_recording_is_never_touched(espeak, make_app, prompts):
    render(make_app, prompts, "--language", "en", "--prompt", "greeting")
    audio = prompts / "en" / "audio"
    recording = (ROOT / "tests" / "data" / "one_second.wav").read_bytes()
    (audio / "ask_pin.wav").write_bytes(recording)  # the therapist's own voice
    texts = prompts / "en" / "prompts.yaml"
    texts.write_text(texts.read_text().replace("greeting: Hello.", "greeting: Good day."), encoding="utf-8")
    before = (audio / "greeting.wav").read_bytes()
    _, result = render(make_app, prompts, "--language", "en", "--prompt", "greeting", "--prompt", "ask_pin")
    assert "rendered 1, up to date 0, recordings left alone 1" in result.output
    assert (audio / "greeting.wav").read_bytes() != before
    assert (audio / "ask_pin.wav").read_bytes() == recording


def test_unknown_languages_and_prompts_are_refused(make_app, prompts):
    _, result = render(make_app, prompts, "--language", "fr")
    assert result.exit_code != 0 and "unknown language(s): fr" in result.output
    _, result = render(make_app, prompts, "--language", "en", "--prompt", "no_such_prompt")
    assert result.exit_code != 0 and "no prompt(s) no_such_prompt in en" in result.output


def test_without_espeak_ng_the_answer_says_how_to_get_it(prompts):
    catalogue = Catalogue.load(prompts)
    with pytest.raises(AudioError, match="apt-get install espeak-ng"):
        render_language(catalogue, "en", espeak="no-such-espeak-binary")


@pytest.mark.parametrize("language", ["en", "es"])
def test_the_number_words_are_every_word_that_spells_0_to_99999(language):
    words = {word for n in range(0, 100_000, 7) for word in number_words(str(n), language)}
    words |= {word for n in (99_999, 100, 1000, 21_000, 71_021) for word in number_words(str(n), language)}
    assert words <= number_vocabulary(language)


@pytest.mark.slow
def test_after_rendering_a_whole_language_a_call_runs_on_clips_end_to_end(espeak, make_app, prompts, add_patient):
    app, result = render(make_app, prompts, "--language", "en")
    assert result.exit_code == 0, result.output
    app = make_app(PROMPTS_DIR=str(prompts))  # a restart plays the new clips
    patient = add_patient()
    from ivr_cbt.simulator import ScriptedCaller
    from ivr_cbt.simulator.runner import run_call

    run_call(app, patient, ScriptedCaller.parse("1234,6,5,4200#,3,2"), now=T0 - timedelta(days=7))
    generate(app, T0)
    call = run_call(app, patient, ScriptedCaller.parse("1234,5,6,4800#,5,1,2"), now=T0)
    documents = [exchange.body for exchange in call.exchanges if exchange.body.startswith("<?xml")]
    assert documents and not any("<Say" in body for body in documents)  # the crisis line too: digit clips
    played = "".join(documents)
    assert "/media/en/fb_pain_was_first.wav" in played and "/media/en/number_nine.wav" in played
