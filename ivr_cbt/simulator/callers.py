"""Scripted callers: what a simulated person does each time the app listens.

A script is a list of actions, one per Gather: ``Press("5#")``, ``Silence()``,
``Speak("seven", 0.42)``, ``HangUp()``. The text form used by the command line and the demo is
comma-separated: ``"1234,5,7,4200#,3,2"``, ``silence``, ``hangup``, ``speech:seven`` or
``speech:seven@0.42``. When the script runs out, the caller hangs up.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from ivr_cbt.simulator import twiml


@dataclass(frozen=True)
class Press:
    keys: str


@dataclass(frozen=True)
class Silence:
    pass


@dataclass(frozen=True)
class Speak:
    text: str
    confidence: float = 0.92


@dataclass(frozen=True)
class HangUp:
    pass


Action = Press | Silence | Speak | HangUp

_KEYS = re.compile(r"^[0-9*#]+$")
_SPEECH = re.compile(r"^speech:(?P<text>[^@]+?)(?:@(?P<confidence>0(?:\.[0-9]+)?|1(?:\.0+)?))?$")


class Caller(Protocol):
    def respond(self, gather: twiml.Gather) -> Action:
        """Decide what to do while the app listens."""


class ScriptedCaller:
    """Plays a fixed list of actions, then hangs up."""

    def __init__(self, actions: list[Action]):
        self.actions = deque(actions)

    def respond(self, gather: twiml.Gather) -> Action:
        return self.actions.popleft() if self.actions else HangUp()

    @classmethod
    def parse(cls, script: str) -> ScriptedCaller:
        """Build a caller from the text form; raise ValueError naming any bad token."""
        return cls([parse_action(token) for token in script.split(",") if token.strip()])


def parse_action(token: str) -> Action:
    token = token.strip()
    lowered = token.lower()
    if lowered == "silence":
        return Silence()
    if lowered == "hangup":
        return HangUp()
    if _KEYS.match(token):
        return Press(token)
    match = _SPEECH.match(token)
    if match:
        confidence = match.group("confidence")
        return Speak(match.group("text").strip(), float(confidence) if confidence else Speak.confidence)
    raise ValueError(
        f"not a caller action: {token!r} (use keys like 5 or 4200#, silence, hangup, speech:seven or speech:seven@0.4)"
    )
