"""The flow language as typed values, and what the engine takes and returns.

Pure data: no Flask, SQLAlchemy or Twilio here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

# --- A flow -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SettingRef:
    """A value spoken from the deployment's settings (e.g. the crisis line)."""

    setting: str
    say_as: Literal["digits", "number"] = "digits"


@dataclass(frozen=True)
class SlotRef:
    """A prompt the host picks for this call, e.g. ``skill``: this week's skill, by name."""

    slot: str
    end: str | None = None  # "." or "?" closes the sentence after it when spoken by TTS


PromptSpec = str | SettingRef | SlotRef


@dataclass(frozen=True)
class Item:
    key: str
    min: int
    max: int
    direction: str
    anchors: dict[str, str] = field(default_factory=dict)
    label: str = ""
    unit: str = ""

    def accepts(self, value: int) -> bool:
        return self.min <= value <= self.max


@dataclass(frozen=True)
class Keys:
    max_digits: int | None = None
    finish_on_key: str = "#"
    timeout: int = 5


@dataclass(frozen=True)
class SpeechSettings:
    confirm_below: float
    heard: str
    confirm: str
    rejected: str


@dataclass(frozen=True)
class Node:
    id: str
    type: str
    alert: str | None = None
    action: str | None = None


@dataclass(frozen=True)
class Say(Node):
    prompts: tuple[PromptSpec, ...] = ()
    next: str = ""


@dataclass(frozen=True)
class Route(Node):
    routes: tuple[tuple[str, str], ...] = ()  # (condition, next)
    next: str = ""


@dataclass(frozen=True)
class Identify(Node):
    pin_prompt: str = ""
    code_prompt: str = ""
    pin_digits: int = 4
    code_digits: int = 6
    timeout: int = 6
    noinput: tuple[str, ...] = ()
    invalid: tuple[str, ...] = ()
    next: str = ""
    on_fail: str = ""


@dataclass(frozen=True)
class Ask(Node):
    item: str = ""
    prompt: tuple[PromptSpec, ...] = ()  # the question; may name a slot, e.g. this week's skill
    keys: Keys = Keys()
    speech: bool = False
    noinput: tuple[str, ...] = ()
    invalid: tuple[str, ...] = ()
    branches: tuple[tuple[int, str], ...] = ()  # (value, next)
    next: str = ""


@dataclass(frozen=True)
class Menu(Node):
    prompts: tuple[PromptSpec, ...] = ()
    prompt: str = ""
    choices: dict[str, str] = field(default_factory=dict)
    timeout: int = 5
    noinput: tuple[str, ...] = ()
    invalid: tuple[str, ...] = ()
    default: str = ""


@dataclass(frozen=True)
class Dial(Node):
    prompts: tuple[PromptSpec, ...] = ()
    number: str = ""  # a setting name
    next: str = ""


@dataclass(frozen=True)
class Feedback(Node):
    """Play the waiting feedback message, then wait for the playback to end before going on
    (so the host learns the message was heard to its end)."""

    prompts: tuple[PromptSpec, ...] = ()
    next: str = ""


@dataclass(frozen=True)
class End(Node):
    prompts: tuple[PromptSpec, ...] = ()


INPUT_NODES = (Identify, Ask, Menu)


@dataclass(frozen=True)
class Flow:
    id: str
    version: int
    start: str
    nodes: dict[str, Node]
    items: dict[str, Item] = field(default_factory=dict)
    speech: SpeechSettings | None = None
    description: str = ""
    checkin: str = "weekly"  # which check-in the flow fills: weekly, daily, or none (a feedback call)

    @property
    def plays_feedback(self) -> bool:
        """Does the flow have a place for the weekly feedback message?"""
        return any(isinstance(node, Feedback) for node in self.nodes.values())

    def slots(self) -> set[str]:
        """Every slot the flow's prompts name (the host must fill each one)."""
        found: set[str] = set()
        for node in self.nodes.values():
            specs = (*getattr(node, "prompts", ()), *(node.prompt if isinstance(node, Ask) else ()))
            found.update(p.slot for p in specs if isinstance(p, SlotRef))
        return found

    def item_keys(self) -> list[str]:
        """Item keys in the order the flow asks them."""
        return [node.item for node in self.nodes.values() if isinstance(node, Ask)]

    def prompt_ids(self) -> set[str]:
        """Every prompt id the flow can play."""
        ids: set[str] = set()
        for node in self.nodes.values():
            for name in ("prompts", "noinput", "invalid"):
                ids.update(p for p in getattr(node, name, ()) if isinstance(p, str))
            if isinstance(node, Ask):
                ids.update(p for p in node.prompt if isinstance(p, str))
            for name in ("prompt", "pin_prompt", "code_prompt"):
                if isinstance(getattr(node, name, None), str) and getattr(node, name):
                    ids.add(getattr(node, name))
        if self.speech:
            ids.update((self.speech.heard, self.speech.confirm, self.speech.rejected))
        return ids


# --- What the engine returns ----------------------------------------------------------------


@dataclass(frozen=True)
class Prompt:
    """Play or speak prompt ``id`` in the call's language."""

    id: str
    end: str | None = None  # "." or "?" closes the sentence after it when spoken by TTS


@dataclass(frozen=True)
class SayValue:
    """Speak a value: a number (``7``) or a string of digits (``9 8 8``)."""

    value: str
    say_as: Literal["digits", "number"] = "number"
    end_sentence: bool = False


@dataclass(frozen=True)
class PlayFeedback:
    """Play the patient's waiting feedback message (the host knows which)."""


@dataclass(frozen=True)
class DialOut:
    number: str


@dataclass(frozen=True)
class Hangup:
    pass


Output = Prompt | SayValue | PlayFeedback | DialOut | Hangup


@dataclass(frozen=True)
class Listen:
    """Wait for the caller: keys, and speech if ``speech`` is true."""

    max_digits: int | None
    finish_on_key: str
    timeout: int
    speech: bool = False


@dataclass(frozen=True)
class AfterPlayback:
    """Wait until what was said has played to its end, then resume with ``Played``."""


@dataclass(frozen=True)
class RecordAnswer:
    item: str
    value: int | None
    raw: str | None
    mode: Literal["dtmf", "speech", "none"]
    confidence: float | None = None

    @property
    def skipped(self) -> bool:
        return self.value is None


@dataclass(frozen=True)
class OpenAlert:
    kind: str


@dataclass(frozen=True)
class HostAction:
    """Something only the host can do, asked for by a node's ``action`` (e.g. opt_out).

    ``origin`` is the node the caller acted at to get there (e.g. the menu offering the way
    out), so the host can record the words the caller heard.
    """

    name: str
    origin: str | None = None
    node: str | None = None  # the node whose action it is


@dataclass(frozen=True)
class FeedbackHeard:
    """The feedback message played to its end on this call."""


@dataclass(frozen=True)
class VerifyIdentity:
    """The host must check these credentials and resume with Identified or Rejected."""

    code: str | None
    pin: str


@dataclass(frozen=True)
class IdentityFailed:
    reason: Literal["wrong", "noinput"]


@dataclass(frozen=True)
class Ended:
    node: str


Effect = RecordAnswer | OpenAlert | HostAction | FeedbackHeard | VerifyIdentity | IdentityFailed | Ended


@dataclass(frozen=True)
class Step:
    """The engine's answer: what to say, what to wait for, what happened, and the new state."""

    outputs: tuple[Output, ...]
    listen: Listen | AfterPlayback | None
    effects: tuple[Effect, ...]
    state: dict

    @property
    def awaiting_host(self) -> bool:
        return self.state.get("awaiting") is not None

    @property
    def ended(self) -> bool:
        return self.state.get("node") is None


# --- What the engine takes ------------------------------------------------------------------


@dataclass(frozen=True)
class Digits:
    digits: str


@dataclass(frozen=True)
class SpeechInput:
    text: str
    confidence: float


@dataclass(frozen=True)
class NoInput:
    pass


@dataclass(frozen=True)
class Identified:
    """The host verified the caller; ``answered`` lists items already recorded this week.

    ``slots`` fills the flow's slots for this call (e.g. ``{"skill": "skill_stretching"}``).
    """

    answered: frozenset[str] = frozenset()
    feedback_waiting: bool = False
    language: str | None = None  # the patient's language, for reading spoken numbers
    slots: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Played:
    """What was said before an AfterPlayback has played to its end."""


@dataclass(frozen=True)
class Rejected:
    pass


Event = Digits | SpeechInput | NoInput | Identified | Rejected | Played
