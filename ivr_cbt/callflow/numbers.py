"""Read one whole number out of a speech transcript ("seven", "I'd say 7", "cuatro mil")."""

from __future__ import annotations

import re

from text_to_num import alpha2digit

_NUMBER = re.compile(r"-?\d+")
# text2num's language codes for the languages we ship prompts in; others fall back to digits.
_TEXT2NUM_LANGUAGE = {"en": "en", "es": "es", "fr": "fr", "de": "de", "pt": "pt", "it": "it", "nl": "nl"}


def parse_spoken_number(text: str, language: str) -> int | None:
    """Return the single number said in ``text``, or None if there is none or more than one."""
    text = text.strip().lower()
    if not text:
        return None
    text = re.sub(r"(?<=\d)[,.](?=\d{3}\b)", "", text)  # "4,200" -> "4200"
    text2num_language = _TEXT2NUM_LANGUAGE.get(language.split("-")[0])
    if text2num_language:
        text = alpha2digit(text, text2num_language, threshold=0)
    found = _NUMBER.findall(text)
    if len(found) != 1:
        return None
    return int(found[0])
