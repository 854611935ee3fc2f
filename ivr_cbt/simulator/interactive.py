"""Calls played one turn at a time, for a person at a keypad (the dashboard's practice phone).

The offline phone plays the call exactly as in the tests; it only pauses where the app listens
(a Gather) until the person decides. Between turns the call is plain data (``state``), so it can
wait anywhere (the practice phone hands it to the browser, signed) with nothing held on the
server: the next turn rebuilds the call from it and plays on until the app listens again or the
call ends.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ivr_cbt.simulator import twiml
from ivr_cbt.simulator.callers import Action
from ivr_cbt.simulator.phone import DEFAULT_EVENTS, Line, OfflinePhone, _CallRun
from ivr_cbt.simulator.transport import HttpResponse


class _Waiting(Exception):
    """The app listens and the caller has not decided yet."""


class _NextAction:
    """A caller who does one given thing, then waits for the person behind it."""

    def __init__(self, action: Action | None = None):
        self.action = action

    def respond(self, gather: twiml.Gather) -> Action:
        if self.action is None:
            raise _Waiting
        action, self.action = self.action, None
        return action


@dataclass(frozen=True)
class Listening:
    """What the app is listening for: keys, speech, how many digits, which key ends them."""

    input: list[str]
    num_digits: int | None
    finish_on_key: str
    timeout: int
    language: str


@dataclass(frozen=True)
class Turn:
    """What happened since the caller last acted, and where the call is now."""

    call_sid: str
    lines: list[Line]
    listening: Listening | None  # None once the call has ended
    state: dict | None  # None once the call has ended
    status: str
    duration_s: int


def start(phone: OfflinePhone, *, status_events: tuple[str, ...] = DEFAULT_EVENTS, **call) -> Turn:
    """Connect a call (``OfflinePhone.call``'s keyword arguments, no caller) and play it until the app listens."""
    call_sid = call.get("call_sid") or phone.new_call_sid()
    status_url = call.get("status_callback") or phone.base_url + "/voice/status"
    context = {
        "call_sid": call_sid,
        "from_": call["from_"],
        "to": call["to"],
        "direction": call.get("direction", "inbound"),
        "answered_by": call.get("answered_by"),
        "status_callback": status_url,
    }
    run = _run(phone, context, _NextAction())
    try:
        run.connect(call.get("answer_url") or phone.base_url + "/voice/answer", status_url, status_events)
    except _Waiting:
        return _paused(run, context)
    return _ended(run, context)


def resume(phone: OfflinePhone, state: dict, action: Action) -> Turn:
    """Do ``action`` where the call paused, and play on until the app listens again or the call ends."""
    context = state["call"]
    run = _run(phone, context, _NextAction(action))
    run.elapsed, run.requests = state["elapsed"], state["requests"]
    run.document = HttpResponse(200, state["content_type"], state["body"])
    verbs = twiml.parse(state["body"], state["content_type"])
    try:
        run.run(verbs, state["url"], start=state["index"], resumed=True)
    except _Waiting:
        return _paused(run, context)
    return _ended(run, context)


def _run(phone: OfflinePhone, context: dict, caller: _NextAction) -> _CallRun:
    return _CallRun(
        phone,
        caller,
        context["call_sid"],
        context["from_"],
        context["to"],
        context["direction"],
        context["answered_by"],
        None,
    )


def _paused(run: _CallRun, context: dict) -> Turn:
    index, url = run.position
    gather = twiml.parse(run.document.body, run.document.content_type)[index]
    state = {
        "call": context,
        "elapsed": run.elapsed,
        "requests": run.requests,
        "body": run.document.body,
        "content_type": run.document.content_type,
        "url": url,
        "index": index,
    }
    listening = Listening(
        sorted(gather.input), gather.num_digits, gather.finish_on_key, gather.timeout, gather.language
    )
    return Turn(run.result.call_sid, run.result.transcript, listening, state, "in-progress", int(run.elapsed))


def _ended(run: _CallRun, context: dict) -> Turn:
    result = run.end(context["status_callback"])
    return Turn(result.call_sid, result.transcript, None, None, result.status, result.duration_s)


def as_dict(turn: Turn) -> dict:
    """A turn as JSON-ready data (the state included)."""
    return asdict(turn)
