"""The prompt catalogue: (prompt id, language) -> text, and a recorded clip if there is one.

Layout::

    prompts/languages.yaml          voice, <Say> and <Gather> languages, speech hints
    prompts/<lang>/prompts.yaml     id: text
    prompts/<lang>/audio/<id>.wav   optional recording; played instead of the text
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ivr_cbt.callflow.yamlio import load

AUDIO_SUFFIX = ".wav"


@dataclass(frozen=True)
class Language:
    code: str
    name: str
    voice: str
    say_language: str
    speech_language: str
    hints: str


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
                frozenset(p.stem for p in audio_dir.glob(f"*{AUDIO_SUFFIX}")) if audio_dir.is_dir() else frozenset()
            )
        return cls(directory, languages, texts, clips)

    def text(self, prompt_id: str, language: str) -> str:
        try:
            return self._texts[language][prompt_id]
        except KeyError:
            raise PromptError(f"no prompt {prompt_id!r} in language {language!r}") from None

    def has_clip(self, prompt_id: str, language: str) -> bool:
        return prompt_id in self._clips.get(language, ())

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
