"""Render prompts to WAV clips with espeak-ng, so a deployment can run on recorded clips end to end.

``python manage.py prompts render-audio [--language en]`` writes ``prompts/<lang>/audio/<id>.wav``
for every prompt without a recording, and ``number_<word>.wav`` for every word that spells the
numbers a message says (0-99999, and tenths such as 4.5 for daily averages). It keeps a manifest,
``prompts/<lang>/audio/rendered.json``, of the clips it made and the text each says: a clip not
in the manifest is a human recording and is never touched; a rendered clip whose text has since
changed is rendered again. Replace any rendered clip with your own recording by overwriting the
file and deleting its manifest entry (or running with ``--keep`` after copying it in).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from ivr_cbt.prompts import AUDIO_SUFFIX, NUMBER_PREFIX, Catalogue, number_words

MANIFEST = "rendered.json"
ESPEAK = "espeak-ng"
WORDS_PER_MINUTE = 150  # espeak-ng's -s: a calm pace for the phone


class AudioError(RuntimeError):
    """Rendering is not possible here (no espeak-ng, unknown voice); the message says what to do."""


@dataclass
class RenderReport:
    language: str
    rendered: list[str] = field(default_factory=list)
    kept: int = 0  # up-to-date rendered clips
    recorded: int = 0  # human recordings, left alone


@cache
def number_vocabulary(language: str) -> frozenset[str]:
    """Every word num2words uses for 0-99999 and for tenths up to 10 in ``language``.

    Above 999 a number is spelled as its thousands, the word for thousand, and the rest, so
    0-1000 and a few numbers per thousand give the same words as all 100,000 (tested).
    """
    values = [str(n) for n in range(0, 1001)]
    values += [str(k * 1000 + rest) for k in range(1, 100) for rest in (0, 1, 21, 100, 101)]
    values += [f"{n / 10:.1f}" for n in range(0, 101)]
    return frozenset(word for value in values for word in number_words(value, language) or ())


def _fingerprint(text: str, voice: str) -> str:
    return hashlib.sha256(f"{voice}\0{WORDS_PER_MINUTE}\0{text}".encode()).hexdigest()[:16]


def render_language(
    catalogue: Catalogue,
    language: str,
    *,
    only: Iterable[str] | None = None,
    numbers: bool = True,
    espeak: str = ESPEAK,
) -> RenderReport:
    """Render the language's prompts (all, or ``only`` these ids) and number words that lack a clip."""
    binary = shutil.which(espeak)
    if binary is None:
        raise AudioError(
            f"{espeak} is not installed: `apt-get install espeak-ng` (Debian/Ubuntu), or record the clips yourself"
        )
    lang = catalogue.languages[language]
    if not lang.espeak_voice:
        raise AudioError(f"prompts/languages.yaml: language {language!r} has no espeak_voice")
    audio_dir = catalogue.directory / language / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = audio_dir / MANIFEST
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.exists() else {}
    wanted = {pid: catalogue.text(pid, language) for pid in (only or sorted(catalogue.ids(language)))}
    if numbers and only is None:
        wanted.update({NUMBER_PREFIX + word: word for word in sorted(number_vocabulary(language))})
    report = RenderReport(language)
    try:
        for clip_id, text in wanted.items():
            path = audio_dir / f"{clip_id}{AUDIO_SUFFIX}"
            stamp = _fingerprint(text, lang.espeak_voice)
            if path.exists() and clip_id not in manifest:
                report.recorded += 1
                continue
            if path.exists() and manifest.get(clip_id) == stamp:
                report.kept += 1
                continue
            _espeak(binary, lang.espeak_voice, text, path)
            manifest[clip_id] = stamp
            report.rendered.append(clip_id)
    finally:
        manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True, ensure_ascii=False) + "\n", "utf-8")
    return report


def _espeak(binary: str, voice: str, text: str, path: Path) -> None:
    temporary = path.with_suffix(".tmp.wav")
    result = subprocess.run(
        [binary, "-v", voice, "-s", str(WORDS_PER_MINUTE), "-w", str(temporary), "--", text],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0 or not temporary.exists():
        temporary.unlink(missing_ok=True)
        raise AudioError(f"espeak-ng failed for {path.name}: {result.stderr.strip()[:200]}")
    temporary.replace(path)  # a half-written clip is never served
