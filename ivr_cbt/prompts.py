"""The prompt catalogue: (prompt id, language) -> text, and a recorded clip if there is one.

Layout::

    prompts/languages.yaml          voice, <Say> and <Gather> languages, speech hints
    prompts/<lang>/prompts.yaml     id: text
    prompts/<lang>/audio/<id>.wav   optional recording; played instead of the text

Numbers (a patient's pain, steps, goals) are spoken from word clips when the language has
them: ``audio/number_<word>.wav`` for every word num2words uses to spell the number in that
language ("four thousand seven hundred" = number_four, number_thousand, number_seven,
number_hundred). Missing any one of them, the number is spoken by TTS.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from num2words import num2words

from ivr_cbt.callflow.yamlio import load

AUDIO_SUFFIX = ".wav"
NUMBER_PREFIX = "number_"
SENTENCE_ENDS = (".", "?", "!")


def close_sentence(text: str, end: str | None) -> str:
    """``text`` ended with ``end`` ("." or "?") unless it already ends a sentence."""
    if end and not text.rstrip().endswith(SENTENCE_ENDS):
        return text.rstrip() + end
    return text


@lru_cache(maxsize=8192)
def number_words(value: str, language: str) -> tuple[str, ...] | None:
    """The words that spell ``value`` ("4700", "4.5") in ``language``, or None if num2words cannot."""
    try:
        number = float(value) if "." in value else int(value)
        spelled = num2words(number, lang=language)
    except (ValueError, NotImplementedError, OverflowError):
        return None
    return tuple(re.sub(r"[-,]", " ", spelled.lower()).split())


@dataclass(frozen=True)
class Language:
    code: str
    name: str
    voice: str
    say_language: str
    speech_language: str
    hints: str
    espeak_voice: str = ""  # the espeak-ng voice that renders its clips (prompts render-audio)


class PromptError(ValueError):
    pass


class Catalogue:
    """Every prompt text and clip, loaded once at start-up."""

    def __init__(
        self,
        directory: Path,
        languages: dict[str, Language],
        texts: dict[str, dict[str, str]],
        clips: dict[str, frozenset[str]],
    ):
        self.directory = directory
        self.languages = languages
        self._texts = texts
        self._clips = clips

    @classmethod
    def load(cls, directory: Path) -> Catalogue:
        directory = Path(directory)
        raw_languages, _ = load(directory / "languages.yaml")
        languages: dict[str, Language] = {}
        texts: dict[str, dict[str, str]] = {}
        clips: dict[str, frozenset[str]] = {}
        for code, raw in (raw_languages or {}).items():
            languages[code] = Language(code=code, **raw)
            entries, _ = load(directory / code / "prompts.yaml")
            bad = [key for key, value in (entries or {}).items() if not isinstance(value, str) or not value.strip()]
            if bad:
                raise PromptError(
                    f"{directory / code / 'prompts.yaml'}: empty or non-text prompt(s): {', '.join(map(str, bad))}"
                )
            texts[code] = dict(entries or {})
            audio_dir = directory / code / "audio"
            clips[code] = (
                frozenset(p.stem for p in audio_dir.glob(f"*{AUDIO_SUFFIX}") if not p.stem.endswith(".tmp"))
                if audio_dir.is_dir()
                else frozenset()
            )
        return cls(directory, languages, texts, clips)

    def text(self, prompt_id: str, language: str) -> str:
        try:
            return self._texts[language][prompt_id]
        except KeyError:
            raise PromptError(f"no prompt {prompt_id!r} in language {language!r}") from None

    def has_clip(self, prompt_id: str, language: str) -> bool:
        return prompt_id in self._clips.get(language, ())

    def number_clips(self, value: str, language: str) -> list[str] | None:
        """The clips that say ``value`` word by word, or None if the language lacks any of them."""
        clips = self._clips.get(language, frozenset())
        if not any(clip.startswith(NUMBER_PREFIX) for clip in clips):
            return None
        words = number_words(value, language)
        if not words:
            return None
        ids = [NUMBER_PREFIX + word for word in words]
        return ids if all(i in clips for i in ids) else None

    def clip_path(self, prompt_id: str, language: str) -> Path | None:
        if not self.has_clip(prompt_id, language):
            return None
        return self.directory / language / "audio" / f"{prompt_id}{AUDIO_SUFFIX}"

    def wording_version(self, language: str, prompt_ids) -> str:
        """A short fingerprint of what these prompts say (and whether a recording says it instead)."""
        digest = hashlib.sha256()
        for prompt_id in prompt_ids:
            digest.update(
                f"{prompt_id}\0{self.text(prompt_id, language)}\0{self.has_clip(prompt_id, language)}\0".encode()
            )
        return f"{language}:{digest.hexdigest()[:12]}"

    def ids(self, language: str) -> set[str]:
        return set(self._texts.get(language, {}))

    def missing(self, prompt_ids: set[str]) -> list[tuple[str, str]]:
        """(language, prompt id) for every id not defined in every language."""
        return sorted((lang, pid) for lang in self.languages for pid in prompt_ids if pid not in self._texts[lang])
