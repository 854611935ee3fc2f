"""Turn engine outputs into TwiML, built only with twilio's VoiceResponse.

Everything said since the caller last acted is nested inside the ``<Gather>``, so a caller
who knows the question can answer before it ends. A ``<Redirect>`` follows every Gather:
Twilio falls through to it when the caller stays silent, and it reports the no-input.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote
from xml.sax.saxutils import escape

from twilio.twiml.voice_response import Gather, VoiceResponse

from ivr_cbt.callflow import spec
from ivr_cbt.prompts import Catalogue, close_sentence


@dataclass(frozen=True)
class Text:
    """Free text spoken by TTS in the call's language (a therapist's own words in a message)."""

    text: str


@dataclass(frozen=True)
class Clip:
    """An audio file played from a URL (a therapist's recording)."""

    url: str


FeedbackResolver = Callable[[], Iterable[spec.Output | Text | Clip]]
_QUOTE = {'"': "&quot;"}


# Stand-ins for the per-step URLs, so a rendered document can be cached and reused.
_ACTION = "https://step.invalid/action"
_NOINPUT = "https://step.invalid/noinput"
_PLAYED = "https://step.invalid/played"


class Renderer:
    def __init__(self, catalogue: Catalogue, base_url: str):
        self.catalogue = catalogue
        self.base_url = base_url
        # Prompts are fixed at start-up, so the same outputs always give the same document:
        # cache it with stand-in URLs and fill in each step's URLs (building one is the costly part).
        self._cached = lru_cache(maxsize=4096)(self._render)

    def render(
        self,
        outputs: Iterable[spec.Output],
        language: str,
        *,
        listen: spec.Listen | None = None,
        action_url: str = "",
        noinput_url: str = "",
        played_url: str = "",
        feedback: FeedbackResolver | None = None,
    ) -> str:
        """Render a TwiML document for ``outputs``, then a Gather if ``listen`` is a Listen, or a
        Redirect to ``played_url`` if it is an AfterPlayback (Twilio follows it once all is played)."""
        outputs = tuple(outputs)
        if feedback is not None and any(isinstance(o, spec.PlayFeedback) for o in outputs):
            return self._render(outputs, language, listen, action_url, noinput_url, played_url, feedback)
        document = self._cached(outputs, language, listen, _ACTION, _NOINPUT, _PLAYED)
        if listen is None:
            return document
        for stand_in, url in ((_ACTION, action_url), (_NOINPUT, noinput_url), (_PLAYED, played_url)):
            document = document.replace(stand_in, escape(url, _QUOTE))
        return document

    def media_url(self, language: str, prompt_id: str) -> str:
        return f"{self.base_url}/media/{quote(language)}/{quote(prompt_id)}.wav"

    def _render(
        self,
        outputs: tuple[spec.Output, ...],
        language: str,
        listen: spec.Listen | None,
        action_url: str,
        noinput_url: str,
        played_url: str,
        feedback: FeedbackResolver | None = None,
    ) -> str:
        lang = self.catalogue.languages[language]
        response = VoiceResponse()
        pending: list[spec.Output] = []
        for output in self._expand(outputs, feedback):
            if isinstance(output, spec.DialOut):
                self._speak(response, pending, lang)
                response.dial(output.number)
            elif isinstance(output, spec.Hangup):
                self._speak(response, pending, lang)
                response.hangup()
            else:
                pending.append(output)
        if listen is None:
            self._speak(response, pending, lang)
        elif isinstance(listen, spec.AfterPlayback):
            self._speak(response, pending, lang)
            response.redirect(played_url, method="POST")
        else:
            gather = response.gather(
                input="dtmf speech" if listen.speech else "dtmf",
                action=action_url,
                method="POST",
                timeout=listen.timeout,
                num_digits=listen.max_digits,
                finish_on_key=listen.finish_on_key,
                action_on_empty_result=False,
                **(
                    {"language": lang.speech_language, "speech_timeout": "auto", "hints": lang.hints}
                    if listen.speech
                    else {}
                ),
            )
            self._speak(gather, pending, lang)
            response.redirect(noinput_url, method="POST")
        return str(response)

    @staticmethod
    def _expand(outputs: Iterable[spec.Output], feedback: FeedbackResolver | None) -> Iterable:
        for output in outputs:
            if isinstance(output, spec.PlayFeedback):
                yield from (feedback() if feedback else ())
            else:
                yield output

    def _speak(self, parent: VoiceResponse | Gather, pending: list[spec.Output], lang) -> None:
        """Add the pending outputs: clips as <Play>, runs of text merged into one <Say>."""
        words: list[str] = []

        def flush() -> None:
            if words:
                parent.say(" ".join(words), voice=lang.voice, language=lang.say_language)
                words.clear()

        def play(prompt_id: str) -> None:
            flush()
            parent.play(self.media_url(lang.code, prompt_id))

        for output in pending:
            if isinstance(output, spec.Prompt) and self.catalogue.has_clip(output.id, lang.code):
                play(output.id)
            elif isinstance(output, spec.Prompt):
                words.append(close_sentence(self.catalogue.text(output.id, lang.code), output.end))
            elif isinstance(output, spec.SayValue):
                clips = self._value_clips(output, lang.code)
                if clips:
                    for clip in clips:
                        play(clip)
                    continue
                spoken = " ".join(output.value) if output.say_as == "digits" else output.value
                words.append(spoken + "." if output.end_sentence else spoken)
            elif isinstance(output, Text):
                words.append(output.text)
            elif isinstance(output, Clip):
                flush()
                parent.play(output.url)
        flush()
        pending.clear()

    def _value_clips(self, output: spec.SayValue, language: str) -> list[str] | None:
        """Number clips that say a value: the number, or each digit of a phone number in turn."""
        if output.say_as == "number":
            return self.catalogue.number_clips(output.value, language)
        digits = [self.catalogue.number_clips(digit, language) for digit in output.value if digit.isdigit()]
        if not digits or any(clip is None for clip in digits):
            return None
        return [clip for clips in digits for clip in clips]
