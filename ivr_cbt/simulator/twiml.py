"""Parse TwiML strictly, the way Twilio does, into verbs the offline phone can play.

Twilio rejects what this rejects: a non-XML content type (12300), leading white space or
broken XML (12100), an unknown verb, attribute or nesting, or a bad attribute value (12200).
TwiML is case-sensitive.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import lru_cache

TWIML_CONTENT_TYPES = ("text/xml", "application/xml", "text/html")


class TwimlError(ValueError):
    """TwiML Twilio would refuse; ``code`` is Twilio's error code."""

    def __init__(self, code: int, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code


@dataclass(frozen=True)
class Say:
    text: str
    voice: str = ""
    language: str = ""
    loop: int = 1


@dataclass(frozen=True)
class Play:
    url: str
    loop: int = 1


@dataclass(frozen=True)
class Pause:
    length: int = 1


@dataclass(frozen=True)
class Gather:
    action: str | None
    method: str
    input: frozenset[str]
    timeout: int
    num_digits: int | None
    finish_on_key: str
    action_on_empty_result: bool
    language: str
    children: tuple[Say | Play | Pause, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Redirect:
    url: str
    method: str


@dataclass(frozen=True)
class Dial:
    number: str
    action: str | None
    method: str
    timeout: int


@dataclass(frozen=True)
class Hangup:
    pass


@dataclass(frozen=True)
class Reject:
    reason: str


Verb = Say | Play | Pause | Gather | Redirect | Dial | Hangup | Reject

_ATTRIBUTES = {
    "Response": set(),
    "Say": {"voice", "language", "loop"},
    "Play": {"loop", "digits"},
    "Pause": {"length"},
    "Gather": {
        "action",
        "method",
        "timeout",
        "finishOnKey",
        "numDigits",
        "input",
        "speechTimeout",
        "language",
        "hints",
        "actionOnEmptyResult",
        "partialResultCallback",
        "partialResultCallbackMethod",
        "profanityFilter",
        "speechModel",
        "enhanced",
        "bargeIn",
        "debug",
        "maxSpeechTime",
    },
    "Redirect": {"method"},
    "Dial": {
        "action",
        "method",
        "timeout",
        "callerId",
        "record",
        "hangupOnStar",
        "timeLimit",
        "answerOnBridge",
        "ringTone",
        "recordingStatusCallback",
        "trim",
    },
    "Hangup": set(),
    "Reject": {"reason"},
}
_GATHER_CHILDREN = {"Say", "Play", "Pause"}
_FINISH_KEYS = set("0123456789#*")
_SPEECH_TIMEOUT = re.compile(r"^(auto|[0-9]+)$")


def parse(body: str, content_type: str) -> list[Verb]:
    """Parse a TwiML document; raise TwimlError where Twilio would refuse it."""
    return list(_parse(body, content_type))


@lru_cache(maxsize=1024)
def _parse(body: str, content_type: str) -> tuple[Verb, ...]:
    # Verbs are immutable, and a simulated cohort gets the same documents again and again
    # (every call's step 3 reads the same): parse each distinct one once. Errors are not cached.
    if content_type.split(";")[0].strip().lower() not in TWIML_CONTENT_TYPES:
        raise TwimlError(12300, f"invalid Content-Type {content_type!r}")
    if body[:1].isspace():
        raise TwimlError(12100, "white space before the XML declaration")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise TwimlError(12100, f"document parse failure: {exc}") from exc
    if root.tag != "Response":
        raise TwimlError(12200, f"root element must be <Response>, not <{root.tag}>")
    _check_attributes(root)
    return tuple(_verb(element) for element in root)


def _check_attributes(element: ET.Element) -> None:
    allowed = _ATTRIBUTES.get(element.tag)
    if allowed is None:
        raise TwimlError(12200, f"unknown verb <{element.tag}>")
    unknown = set(element.attrib) - allowed
    if unknown:
        raise TwimlError(12200, f"<{element.tag}> has unknown attribute(s): {', '.join(sorted(unknown))}")


def _int(element: ET.Element, name: str, default: int, minimum: int = 0) -> int:
    raw = element.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < minimum:
        raise TwimlError(12200, f"<{element.tag}> {name}={raw!r} is not a whole number >= {minimum}")
    return int(raw)


def _method(element: ET.Element) -> str:
    method = element.get("method", "POST")
    if method not in ("GET", "POST"):
        raise TwimlError(12200, f"<{element.tag}> method={method!r}")
    return method


def _text(element: ET.Element) -> str:
    return "".join(element.itertext()).strip()


def _verb(element: ET.Element) -> Verb:
    _check_attributes(element)
    tag = element.tag
    # <Gather> holds verbs and <Say> may hold SSML; every other verb holds only text.
    if tag not in ("Gather", "Dial", "Say") and len(element):
        raise TwimlError(12200, f"<{tag}> cannot contain <{element[0].tag}>")
    if tag == "Say":
        return Say(_text(element), element.get("voice", ""), element.get("language", ""), _int(element, "loop", 1))
    if tag == "Play":
        return Play(_text(element), _int(element, "loop", 1))
    if tag == "Pause":
        return Pause(_int(element, "length", 1, minimum=1))
    if tag == "Gather":
        return _gather(element)
    if tag == "Redirect":
        if not _text(element):
            raise TwimlError(12200, "<Redirect> needs a URL")
        return Redirect(_text(element), _method(element))
    if tag == "Dial":
        number = _text(element)
        if not number:
            raise TwimlError(12200, "<Dial> needs a number")
        return Dial(number, element.get("action"), _method(element), _int(element, "timeout", 30, minimum=1))
    if tag == "Hangup":
        return Hangup()
    return Reject(element.get("reason", "rejected"))


def _gather(element: ET.Element) -> Gather:
    modes = element.get("input", "dtmf").split()
    if not modes or set(modes) - {"dtmf", "speech"}:
        raise TwimlError(12200, f"<Gather> input={element.get('input')!r}")
    finish = element.get("finishOnKey", "#")
    if finish and (len(finish) != 1 or finish not in _FINISH_KEYS):
        raise TwimlError(13310, f"<Gather> finishOnKey={finish!r}")
    on_empty = element.get("actionOnEmptyResult", "false")
    if on_empty not in ("true", "false"):
        raise TwimlError(12200, f"<Gather> actionOnEmptyResult={on_empty!r}")
    speech_timeout = element.get("speechTimeout")
    if speech_timeout is not None and not _SPEECH_TIMEOUT.match(speech_timeout):
        raise TwimlError(12200, f"<Gather> speechTimeout={speech_timeout!r}")
    children = []
    for child in element:
        if child.tag not in _GATHER_CHILDREN:
            raise TwimlError(12200, f"<Gather> cannot contain <{child.tag}>")
        children.append(_verb(child))
    num_digits = element.get("numDigits")
    return Gather(
        action=element.get("action"),
        method=_method(element),
        input=frozenset(modes),
        timeout=_int(element, "timeout", 5, minimum=1),
        num_digits=_int(element, "numDigits", 0, minimum=1) if num_digits is not None else None,
        finish_on_key=finish,
        action_on_empty_result=on_empty == "true",
        language=element.get("language", "en-US"),
        children=tuple(children),
    )
