"""A virtual patient on the line: recognises each question the way a person does, by what is said,
and answers as the behaviour model says (ivr_cbt/simulator/behaviour.py).

The webhook URLs are opaque (``/voice/step?s=3``), so the caller knows which question it hears
from the prompt texts (or clip names) of the flow's input nodes, per language. A re-prompt
(another wording after silence or a wrong key) is taken as the same question again.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote, urlsplit

from ivr_cbt.callflow import spec
from ivr_cbt.prompts import Catalogue, number_words
from ivr_cbt.simulator import twiml
from ivr_cbt.simulator.behaviour import VirtualPatient
from ivr_cbt.simulator.callers import Action, HangUp, Press, Silence, Speak
from ivr_cbt.simulator.phone import CallResult

MEMO_LIMIT = 50_000  # distinct Say texts remembered per language (numbers read back make new ones)


@dataclass(frozen=True)
class Question:
    kind: str  # "pin", "code", "ask", "menu", "confirm"
    node: spec.Node | None = None
    item: spec.Item | None = None


class QuestionBook:
    """Which question a Gather asks, from its prompt texts and clip names (every flow, every language)."""

    def __init__(self, flows: dict[str, spec.Flow], catalogue: Catalogue, languages: list[str]):
        self.by_text: dict[str, dict[str, Question]] = {lang: {} for lang in languages}
        self.by_clip: dict[str, Question] = {}
        self._memo: dict[str, dict[str, Question | None]] = {}
        self.feedback_texts: dict[str, set[str]] = {lang: set() for lang in languages}  # said before a message
        self.feedback_clips: set[str] = set()
        self.menus: dict[str, tuple[str | None, str | None, str | None]] = {}  # node id -> opt-out, replay, stay
        for flow in flows.values():
            for node in flow.nodes.values():
                for prompt_id, question in self._questions(flow, node):
                    self.by_clip[prompt_id] = question
                    for lang in languages:
                        self.by_text[lang][catalogue.text(prompt_id, lang).strip()] = question
                if isinstance(node, spec.Menu):
                    self.menus[node.id] = self._menu_keys(flow, node)
                if isinstance(node, spec.Feedback):
                    intros = [p for p in node.prompts if isinstance(p, str)]
                    self.feedback_clips.update(intros)
                    for lang in languages:
                        self.feedback_texts[lang].update(catalogue.text(p, lang).strip() for p in intros)
            if flow.speech:
                confirm = Question("confirm")
                self.by_clip[flow.speech.confirm] = confirm
                for lang in languages:
                    self.by_text[lang][catalogue.text(flow.speech.confirm, lang).strip()] = confirm

    @staticmethod
    def _questions(flow: spec.Flow, node: spec.Node):
        if isinstance(node, spec.Identify):
            yield node.pin_prompt, Question("pin", node)
            yield node.code_prompt, Question("code", node)
        elif isinstance(node, spec.Ask):
            first = next((p for p in node.prompt if isinstance(p, str)), None)
            if first:
                yield first, Question("ask", node, flow.items.get(node.item))
        elif isinstance(node, spec.Menu) and node.prompt:
            yield node.prompt, Question("menu", node)

    @staticmethod
    def _menu_keys(flow: spec.Flow, node: spec.Menu) -> tuple[str | None, str | None, str | None]:
        """The keys that stop the calls, replay the message, and go on without dialling (a crisis offer)."""
        opt_out = replay = stay = None
        for key, target in sorted(node.choices.items()):
            kind = flow.nodes[target]
            if isinstance(kind, spec.End) and kind.action == "opt_out":
                opt_out = key
            elif isinstance(kind, spec.Feedback):
                replay = key
            elif not isinstance(kind, spec.Dial):
                stay = key
        return opt_out, replay, stay

    def recognise(self, gather: twiml.Gather, language: str) -> Question | None:
        """The question asked last in the Gather's prompts (a Say may join several prompts)."""
        found = None
        for child in gather.children:
            if isinstance(child, twiml.Say):
                found = self._in_text(child.text, language) or found
            elif isinstance(child, twiml.Play):
                name = unquote(urlsplit(child.url).path.rsplit("/", 1)[-1]).removesuffix(".wav")
                found = self.by_clip.get(name) or found
        return found

    def heard_feedback(self, result: CallResult, language: str) -> bool:
        """Did the call play a feedback message and go on past it (so it was heard to its end)?"""
        texts, lines = self.feedback_texts.get(language, set()), result.transcript
        for index, line in enumerate(lines):
            if line.speaker != "APP":
                continue
            if any(t in line.text for t in texts) or any(f"/{c}.wav" in line.text for c in self.feedback_clips):
                return any(later.speaker == "CALLER" for later in lines[index + 1 :])
        return False

    def _in_text(self, text: str, language: str) -> Question | None:
        memo = self._memo.setdefault(language, {})
        if text not in memo:
            texts = self.by_text.get(language, {})
            best, where = None, -1
            for prompt_text, question in texts.items():
                at = text.rfind(prompt_text)
                if at > where:
                    best, where = question, at
            if len(memo) < MEMO_LIMIT:
                memo[text] = best
            return best
        return memo[text]


class VirtualCaller:
    """One call of a virtual patient (``OfflinePhone`` asks it what to do at each Gather)."""

    def __init__(self, patient: VirtualPatient, book: QuestionBook, now: datetime, *, confirm_below: float = 0.6):
        self.patient = patient
        self.book = book
        self.week = patient.program_week(now)
        self.answers = patient.week(self.week)
        self.rng: random.Random = patient.call_rng()
        self.calls = patient.cohort["calls"]
        self.confirm_below = confirm_below
        self.asked: dict[str, int] = {}
        self.last: Question | None = None
        self.opted_out = False

    def respond(self, gather: twiml.Gather) -> Action:
        question = self.book.recognise(gather, self.patient.language) or self.last
        if question is None:
            return Silence()
        self.last = question
        key = question.node.id if question.node else question.kind
        self.asked[key] = self.asked.get(key, 0) + 1
        first_time = self.asked[key] == 1
        if question.kind == "pin":
            if first_time and self.rng.random() < self.calls["wrong_pin"]:
                return Press(f"{(int(self.patient.pin) + 1) % 10_000:04d}")
            return Press(self.patient.pin)
        if question.kind == "confirm":
            return Press("1")  # what was heard is what the patient said
        if question.kind == "menu":
            return self._menu(question.node)
        if question.kind == "ask":
            return self._ask(question, first_time)
        return Silence()

    def _menu(self, node: spec.Menu) -> Action:
        opt_out, replay, stay = self.book.menus[node.id]
        if opt_out and self.rng.random() < self.calls["opt_out_per_call"]:
            self.opted_out = True
            return Press(opt_out)
        if replay and self.asked[node.id] == 1 and self.rng.random() < self.calls.get("replay_feedback", 0):
            return Press(replay)
        if stay and not replay and not opt_out:
            return Press(stay)  # the crisis offer: go on with the check-in
        return Silence()

    def _ask(self, question: Question, first_time: bool) -> Action:
        node, item = question.node, question.item
        if first_time:
            draw = self.rng.random()
            calls = self.calls
            if draw < calls["hang_up_per_question"]:
                return HangUp()
            draw -= calls["hang_up_per_question"]
            if draw < calls["silence"]:
                return Silence()
            draw -= calls["silence"]
            if draw < calls["wrong_key"] and item is not None:
                return self._keys(node, item.max + 1)
        value = self._value(node.item, item)
        if node.speech and self.rng.random() < self.calls["speech"]:
            words = number_words(str(value), self.patient.language)
            if words:
                low, high = self.calls["speech_confidence"]
                return Speak(" ".join(words), round(self.rng.uniform(low, high), 2))
        return self._keys(node, value)

    def _value(self, key: str, item: spec.Item | None) -> int:
        week = self.answers
        known = {
            "pain_avg": week.pain,
            "pain_today": week.pain,
            "sleep_quality": week.sleep,
            "steps_avg": week.steps,
            "steps_yesterday": week.steps,
            "practice_days": week.practice,
            "practiced_today": 1 if week.practice >= 4 else 2,
            "safety": 1 if week.safety_yes else 2,
        }
        if key in known:
            return known[key]
        return self.rng.randint(item.min, item.max) if item else 0

    @staticmethod
    def _keys(node: spec.Ask, value: int) -> Press:
        digits = str(value)
        keys = node.keys
        if keys.finish_on_key and (not keys.max_digits or len(digits) < keys.max_digits):
            digits += keys.finish_on_key
        return Press(digits)
