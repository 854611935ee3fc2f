"""A feedback message is a list of segments: recorded (or spoken) prompts, numbers, free text, a recording.

JSON form, stored with the message and edited by therapists::

    {"prompt": "fb_pain_was"}                   a prompt id (prompts/<lang>/prompts.yaml, or its clip)
    {"number": 5, "end": "."}                   a number, spoken from number clips when present
    {"text": "Lovely to hear you walked more."}   free text a therapist typed, spoken by TTS
    {"recording": "<token>"}                    a therapist's uploaded recording

``end`` (optional, "." or "?") closes a sentence after a prompt or a number when spoken by TTS.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from functools import cache

import jsonschema

from ivr_cbt.prompts import close_sentence, number_words

SCHEMA = {
    "type": "array",
    "maxItems": 200,
    "items": {
        "oneOf": [
            {
                "type": "object",
                "required": ["prompt"],
                "additionalProperties": False,
                "properties": {
                    "prompt": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
                    "end": {"enum": [".", "?"]},
                },
            },
            {
                "type": "object",
                "required": ["number"],
                "additionalProperties": False,
                "properties": {
                    "number": {"type": "number", "minimum": -99999, "maximum": 99999},
                    "end": {"enum": [".", "?"]},
                },
            },
            {
                "type": "object",
                "required": ["text"],
                "additionalProperties": False,
                "properties": {"text": {"type": "string", "minLength": 1, "maxLength": 2000}},
            },
            {
                "type": "object",
                "required": ["recording"],
                "additionalProperties": False,
                "properties": {"recording": {"type": "string", "pattern": "^[A-Za-z0-9_-]{16,64}$"}},
            },
        ]
    },
}
WORDS_PER_SECOND = 2.5  # a calm TTS voice; the offline phone times speech the same way


class SegmentError(ValueError):
    """A segment list that cannot be played; the message says which segment and why."""


def prompt(prompt_id: str, end: str | None = None) -> dict:
    return {"prompt": prompt_id, **({"end": end} if end else {})}


def number(value: float | int, end: str | None = None) -> dict:
    return {"number": value, **({"end": end} if end else {})}


@cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(SCHEMA)


def validate(segments, known_prompts: Iterable[str] | None = None) -> list[dict]:
    """Return ``segments`` if they are a playable list; raise SegmentError otherwise."""
    errors = sorted(_validator().iter_errors(segments), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        first = errors[0]
        where = f"segment {first.absolute_path[0] + 1}" if first.absolute_path else "the list"
        raise SegmentError(f"{where}: not a prompt, number, text or recording segment")
    if known_prompts is not None:
        known = set(known_prompts)
        unknown = [s["prompt"] for s in segments if "prompt" in s and s["prompt"] not in known]
        if unknown:
            raise SegmentError(f"unknown prompt(s): {', '.join(unknown)}")
    return segments


def parse(text: str, known_prompts: Iterable[str] | None = None) -> list[dict]:
    """Parse a segment list typed as JSON (the dashboard's editor)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SegmentError(f"not JSON: {exc.msg} (line {exc.lineno})") from None
    return validate(data, known_prompts)


def spoken_number(value: float | int) -> str:
    """How a number is written for TTS: whole numbers without a decimal point."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def script(segments: Sequence[dict], text_of) -> str:
    """The message as one text (for previews, the therapist's review and exports).

    ``text_of(prompt_id)`` returns the prompt's words in the message's language.
    """
    words = []
    for segment in segments:
        if "prompt" in segment:
            words.append(close_sentence(text_of(segment["prompt"]), segment.get("end")))
        elif "number" in segment:
            words.append(close_sentence(spoken_number(segment["number"]), segment.get("end")))
        elif "text" in segment:
            words.append(segment["text"].strip())
        else:
            words.append("[the therapist's recording]")
    return " ".join(w for w in words if w)


def estimated_seconds(
    segments: Sequence[dict], text_of, language: str | None = None, recording_seconds: float = 0.0
) -> float:
    """About how long the message takes to speak (numbers counted as the words that say them)."""
    words = 0
    for segment in segments:
        if "number" in segment and language is not None:
            words += len(number_words(spoken_number(segment["number"]), language) or (1,))
        elif "recording" not in segment:
            words += len(script([segment], text_of).split())
    return words / WORDS_PER_SECOND + recording_seconds
