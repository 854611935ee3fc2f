"""The flow interpreter: ``start`` a call, or ``resume`` it with an event. No I/O.

The engine walks nodes that need nothing from the caller (say, route, dial) until it reaches
one that waits for input (identify, ask, menu), a feedback message that must play to its end
(feedback), or an end. It returns what to play,
what to listen for, the effects the host must apply (answers to record, alerts to open, a PIN
to verify) and the state the host keeps until the next webhook. The state is a plain dict
that survives a JSON round trip.

Rules every input node follows:

* ``*`` repeats the current question and counts as nothing.
* Each no-input and each invalid answer gets the next prompt of its list (tapered
  re-prompts); one more after the last ends the node: an item is recorded as skipped and the
  flow moves on; identification fails; a menu takes its default.
* A speech answer below the flow's confidence threshold is read back and confirmed on the
  keypad; if the caller rejects it, the item is asked again on the keypad only.
"""

from __future__ import annotations

from collections.abc import Mapping

from ivr_cbt.callflow import spec
from ivr_cbt.callflow.numbers import parse_spoken_number


class EngineError(RuntimeError):
    """The host called the engine in a way no flow allows (a bug in the host, not the caller)."""


def start(flow: spec.Flow, *, caller_known: bool, language: str, settings: Mapping[str, str]) -> spec.Step:
    """Start ``flow`` for a new call."""
    state = {
        "flow": flow.id,
        "version": flow.version,
        "node": None,
        "language": language,
        "caller_known": caller_known,
        "identified": False,
        "answered": [],
        "feedback_waiting": False,
        "slots": {},
        "awaiting": None,
        "playing": False,
    }
    run = _Run(flow, state, settings)
    run.enter(flow.start)
    return run.step()


def resume(flow: spec.Flow, state: dict, event: spec.Event, *, settings: Mapping[str, str]) -> spec.Step:
    """Continue the call in ``state`` with what the caller (or the host) did."""
    if state.get("flow") != flow.id:
        raise EngineError(f"state belongs to flow {state.get('flow')!r}, not {flow.id!r}")
    if state.get("node") is None:
        raise EngineError("the call has already ended")
    run = _Run(flow, dict(state, answered=list(state["answered"])), settings)
    node = flow.nodes[state["node"]]
    if state.get("playing"):
        # Only the end of the playback resumes a feedback node (Twilio requests its URL then).
        run.feedback_heard(node)
    elif state.get("awaiting"):
        if not isinstance(event, spec.Identified | spec.Rejected):
            raise EngineError("the engine is waiting for the host to verify the caller")
        run.identity_result(node, event)
    elif isinstance(event, spec.Identified | spec.Rejected):
        raise EngineError("the engine did not ask for verification")
    elif isinstance(node, spec.Identify):
        run.identify_input(node, event)
    elif isinstance(node, spec.Ask):
        run.ask_input(node, event)
    elif isinstance(node, spec.Menu):
        run.menu_input(node, event)
    else:
        raise EngineError(f"node {node.id!r} does not wait for input")
    return run.step()


class _Run:
    """One engine call: collects outputs and effects while it moves through the graph."""

    def __init__(self, flow: spec.Flow, state: dict, settings: Mapping[str, str]):
        self.flow, self.state, self.settings = flow, state, settings
        self.outputs: list[spec.Output] = []
        self.effects: list[spec.Effect] = []
        self.listen: spec.Listen | None = None

    def step(self) -> spec.Step:
        return spec.Step(tuple(self.outputs), self.listen, tuple(self.effects), self.state)

    # --- walking ---------------------------------------------------------------------------

    def enter(self, node_id: str) -> None:
        """Walk from ``node_id`` until the flow waits for the caller or ends."""
        origin = self.state.get("node")  # where the caller acted to come here
        for _ in range(4 * len(self.flow.nodes) + 4):
            node = self.flow.nodes[node_id]
            self.state.update(node=node_id, noinput=0, invalid=0, confirm=None, keys_only=False, code=None)
            if node.alert:
                self.effects.append(spec.OpenAlert(node.alert))
            if node.action:
                self.effects.append(spec.HostAction(node.action, origin, node_id))
            if isinstance(node, spec.Say):
                self.say(node.prompts)
                node_id = node.next
            elif isinstance(node, spec.Route):
                node_id = next((target for cond, target in node.routes if self.holds(cond)), node.next)
            elif isinstance(node, spec.Feedback):
                if not self.state["feedback_waiting"]:
                    node_id = node.next
                    continue
                self.say(node.prompts)
                self.outputs.append(spec.PlayFeedback())
                self.listen = spec.AfterPlayback()
                self.state["playing"] = True
                return
            elif isinstance(node, spec.Dial):
                self.say(node.prompts)
                self.outputs.append(spec.DialOut(self.settings[node.number]))
                node_id = node.next
            elif isinstance(node, spec.End):
                self.say(node.prompts)
                self.outputs.append(spec.Hangup())
                self.effects.append(spec.Ended(node.id))
                self.state.update(node=None)
                return
            elif isinstance(node, spec.Ask) and node.item in self.state["answered"]:
                node_id = node.next  # resumed call: this item was recorded on an earlier call
            else:
                self.ask_again(node, repeat=True)
                return
        raise EngineError(f"flow {self.flow.id!r} loops without waiting for the caller")

    def holds(self, condition: str) -> bool:
        answered = set(self.state["answered"])
        if condition == "checkin_complete":
            return self.state["identified"] and answered >= set(self.flow.item_keys())
        if condition == "checkin_started":
            return self.state["identified"] and bool(answered)
        if condition == "feedback_waiting":
            return bool(self.state["feedback_waiting"])
        raise EngineError(f"unknown condition {condition!r}")

    def say(self, prompts) -> None:
        for prompt in prompts:
            if isinstance(prompt, spec.SettingRef):
                self.outputs.append(spec.SayValue(self.settings[prompt.setting], prompt.say_as))
            elif isinstance(prompt, spec.SlotRef):
                filled = self.state.get("slots", {}).get(prompt.slot)
                if filled is None:
                    raise EngineError(f"the host did not fill slot {prompt.slot!r}")
                self.outputs.append(spec.Prompt(filled, prompt.end))
            else:
                self.outputs.append(spec.Prompt(prompt))

    def feedback_heard(self, node: spec.Node) -> None:
        self.state["playing"] = False
        self.effects.append(spec.FeedbackHeard())
        self.enter(node.next)

    # --- asking ----------------------------------------------------------------------------

    def ask_again(self, node: spec.Node, repeat: bool = False, preface: str | None = None) -> None:
        """Play the node's question (after ``preface``) and listen; ``repeat`` adds its lead-in."""
        if repeat and isinstance(node, spec.Menu):
            self.say(node.prompts)
        if preface:
            self.outputs.append(spec.Prompt(preface))
        if isinstance(node, spec.Identify):
            collecting_code = not self.state["caller_known"] and self.state.get("code") is None
            self.outputs.append(spec.Prompt(node.code_prompt if collecting_code else node.pin_prompt))
            digits = node.code_digits if collecting_code else node.pin_digits
            self.listen = spec.Listen(max_digits=digits, finish_on_key="#", timeout=node.timeout)
        elif isinstance(node, spec.Ask):
            self.say(node.prompt)
            speech = node.speech and not self.state.get("keys_only") and self.flow.speech is not None
            self.listen = spec.Listen(node.keys.max_digits, node.keys.finish_on_key, node.keys.timeout, speech)
        elif isinstance(node, spec.Menu):
            self.outputs.append(spec.Prompt(node.prompt))
            self.listen = spec.Listen(max_digits=1, finish_on_key="", timeout=node.timeout)
        else:
            raise EngineError(f"node {node.id!r} does not ask anything")

    def failed(self, node: spec.Node, kind: str, raw: str | None = None) -> bool:
        """Count a no-input or invalid answer; re-prompt, or return False when out of tries."""
        count = self.state[kind] + 1
        self.state[kind] = count
        reprompts = getattr(node, kind)
        if count > len(reprompts):
            return False
        self.state["confirm"] = None
        self.ask_again(node, preface=reprompts[count - 1])
        return True

    # --- identify ----------------------------------------------------------------------------

    def identify_input(self, node: spec.Identify, event: spec.Event) -> None:
        if isinstance(event, spec.Digits) and "*" in event.digits:
            self.ask_again(node)
            return
        if isinstance(event, spec.NoInput):
            if not self.failed(node, "noinput"):
                self.identity_failed(node, "noinput")
            return
        collecting_code = not self.state["caller_known"] and self.state.get("code") is None
        digits = event.digits if isinstance(event, spec.Digits) else ""
        expected = node.code_digits if collecting_code else node.pin_digits
        if not (digits.isdigit() and len(digits) == expected):
            self.wrong_credentials(node)
        elif collecting_code:
            self.state["code"] = digits
            self.ask_again(node)
        else:
            self.state["awaiting"] = "identity"
            self.effects.append(spec.VerifyIdentity(self.state.get("code"), digits))

    def identity_result(self, node: spec.Node, event: spec.Event) -> None:
        self.state["awaiting"] = None
        if isinstance(event, spec.Rejected):
            self.wrong_credentials(node)
            return
        self.state.update(
            identified=True,
            answered=sorted(event.answered),
            feedback_waiting=event.feedback_waiting,
            language=event.language or self.state["language"],
            slots=dict(event.slots),
        )
        self.enter(node.next)

    def wrong_credentials(self, node: spec.Identify) -> None:
        self.state["code"] = None
        if not self.failed(node, "invalid"):
            self.identity_failed(node, "wrong")

    def identity_failed(self, node: spec.Identify, reason: str) -> None:
        self.effects.append(spec.IdentityFailed(reason))
        self.enter(node.on_fail)

    # --- ask ---------------------------------------------------------------------------------

    def ask_input(self, node: spec.Ask, event: spec.Event) -> None:
        item = self.flow.items[node.item]
        if isinstance(event, spec.Digits) and "*" in event.digits:
            self.state["confirm"] = None
            self.ask_again(node)
            return
        if self.state.get("confirm"):
            self.confirm_input(node, event)
            return
        if isinstance(event, spec.NoInput):
            if not self.failed(node, "noinput"):
                self.skip(node, None)
            return
        if isinstance(event, spec.Digits):
            value = int(event.digits) if event.digits.isdigit() else None
            if value is not None and item.accepts(value):
                self.answer(node, spec.RecordAnswer(node.item, value, event.digits, "dtmf"))
            elif not self.failed(node, "invalid"):
                self.skip(node, event.digits)
            return
        if isinstance(event, spec.SpeechInput):
            value = parse_spoken_number(event.text, self.state["language"])
            if value is None or not item.accepts(value):
                if not self.failed(node, "invalid"):
                    self.skip(node, event.text)
            elif event.confidence < self.flow.speech.confirm_below:
                self.state["confirm"] = {"value": value, "raw": event.text, "confidence": event.confidence}
                self.outputs += [
                    spec.Prompt(self.flow.speech.heard),
                    spec.SayValue(str(value), end_sentence=True),
                    spec.Prompt(self.flow.speech.confirm),
                ]
                self.listen = spec.Listen(max_digits=1, finish_on_key="", timeout=node.keys.timeout)
            else:
                self.answer(node, spec.RecordAnswer(node.item, value, event.text, "speech", event.confidence))
            return
        raise EngineError(f"unexpected event {event!r}")

    def confirm_input(self, node: spec.Ask, event: spec.Event) -> None:
        pending = self.state["confirm"]
        self.state["confirm"] = None
        if isinstance(event, spec.Digits) and event.digits == "1":
            answer = spec.RecordAnswer(node.item, pending["value"], pending["raw"], "speech", pending["confidence"])
            self.answer(node, answer)
            return
        # Anything else is a "no": ask again on the keypad, where no confirmation is needed.
        self.state["keys_only"] = True
        self.ask_again(node, preface=self.flow.speech.rejected)

    def answer(self, node: spec.Ask, record: spec.RecordAnswer) -> None:
        self.effects.append(record)
        self.state["answered"] = sorted({*self.state["answered"], node.item})
        target = next((t for value, t in node.branches if value == record.value), node.next)
        self.enter(target)

    def skip(self, node: spec.Ask, raw: str | None) -> None:
        self.effects.append(spec.RecordAnswer(node.item, None, raw, "none"))
        self.state["answered"] = sorted({*self.state["answered"], node.item})
        self.enter(node.next)

    # --- menu --------------------------------------------------------------------------------

    def menu_input(self, node: spec.Menu, event: spec.Event) -> None:
        if isinstance(event, spec.Digits) and "*" in event.digits:
            self.ask_again(node)
        elif isinstance(event, spec.Digits) and event.digits in node.choices:
            self.enter(node.choices[event.digits])
        elif isinstance(event, spec.NoInput):
            if not self.failed(node, "noinput"):
                self.enter(node.default)
        elif not self.failed(node, "invalid"):
            self.enter(node.default)
