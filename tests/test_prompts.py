"""Prompts: spoken with the language's voice, or played from a recorded clip when there is one."""

from __future__ import annotations

import shutil
import wave
from pathlib import Path

from ivr_cbt.calls import HOST_PROMPTS
from ivr_cbt.prompts import Catalogue

from .conftest import PUBLIC_BASE_URL
from .helpers import answer_params, sid, signed_post, twiml

ROOT = Path(__file__).resolve().parent.parent


def test_host_prompts_exist_in_every_language():
    catalogue = Catalogue.load(ROOT / "prompts")
    assert catalogue.missing(set(HOST_PROMPTS)) == []


def test_prompts_are_spoken_with_the_languages_voice(client, add_patient):
    add_patient(phone="+12025550150", language="es")
    root = twiml(signed_post(client, "/voice/answer", answer_params(sid(1), from_="+12025550150")))
    (say,) = root.iter("Say")
    assert (say.get("voice"), say.get("language")) == ("Polly.Lupe", "es-US")
    assert say.text.startswith("Hola.")


def test_a_prompt_with_a_clip_is_played_and_the_clip_is_served(make_app, tmp_path, add_patient):
    prompts = tmp_path / "prompts"
    shutil.copytree(ROOT / "prompts", prompts)
    (prompts / "en" / "audio").mkdir()
    with wave.open(str(prompts / "en" / "audio" / "greeting.wav"), "wb") as clip:
        clip.setnchannels(1)
        clip.setsampwidth(2)
        clip.setframerate(8000)
        clip.writeframes(b"\x00\x00" * 800)
    app = make_app(PROMPTS_DIR=str(prompts))
    client = app.test_client()
    root = twiml(signed_post(client, "/voice/answer", answer_params(sid(1), from_="+12025550999")))
    gather = root.find("Gather")
    assert [child.tag for child in gather] == ["Play", "Say"]
    assert gather.find("Play").text == f"{PUBLIC_BASE_URL}/media/en/greeting.wav"
    assert "patient code" in gather.find("Say").text
    served = client.get("/media/en/greeting.wav")
    assert served.status_code == 200 and served.mimetype == "audio/wav"
    assert served.data[:4] == b"RIFF"
    served.close()
