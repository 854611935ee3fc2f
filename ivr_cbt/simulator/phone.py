"""The offline phone: plays a call against the app exactly as Twilio would, with no network.

It sends signed, form-encoded webhook requests, interprets the TwiML it gets back (Say, Play,
Pause, Gather with dtmf and speech, Redirect, Dial, Hangup, Reject, end of document), asks a
scripted caller what to do at each Gather, and sends the status callbacks Twilio sends. It can
be answered by a human or a machine, or ring out unanswered.

Gather semantics (from Twilio's docs, see docs/twilio.md):
* keys are collected until ``numDigits`` is reached or ``finishOnKey`` is pressed (only after a
  digit; the key itself is not sent); keys typed before the timeout are sent when it expires;
* with no input, the action is requested only if ``actionOnEmptyResult`` is true; otherwise
  Twilio falls through to the next verb, and ends the call if there is none;
* speech is submitted as ``SpeechResult`` and ``Confidence`` when ``input`` includes speech.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from urllib.parse import urlencode, urljoin

from twilio.request_validator import RequestValidator

from ivr_cbt.clock import SimulatedClock
from ivr_cbt.simulator import twiml
from ivr_cbt.simulator.callers import Caller, HangUp, Press, Silence, Speak
from ivr_cbt.simulator.transport import HttpResponse, Transport

API_VERSION = "2010-04-01"
WORDS_PER_SECOND = 2.5
KEY_SECONDS = 0.4
MAX_REQUESTS_PER_CALL = 200
# Twilio sends only "completed" unless other events were asked for (StatusCallbackEvent).
DEFAULT_EVENTS = ("completed",)


class _Signer(RequestValidator):
    """twilio-python's signing, for the plain dict of parameters the phone sends (its own
    ``get_values`` tries two MultiDict methods first, raising and catching two exceptions a parameter)."""

    def get_values(self, param_dict, param_name):
        return [param_dict[param_name]]


class PhoneError(RuntimeError):
    """The app did something Twilio would reject or could not continue from."""


@dataclass(frozen=True)
class Line:
    speaker: str  # "APP", "CALLER" or "--" (what happened on the line)
    text: str


@dataclass
class Exchange:
    """One webhook request and the app's answer."""

    url: str
    params: dict[str, str]
    status: int
    body: str


@dataclass
class CallResult:
    call_sid: str
    status: str
    duration_s: int
    answered_by: str | None
    transcript: list[Line] = field(default_factory=list)
    exchanges: list[Exchange] = field(default_factory=list)

    def text(self) -> str:
        """The transcript as readable lines, for printing and golden files."""
        return "\n".join(f"{line.speaker:<7} {line.text}".rstrip() for line in self.transcript)

    def said(self) -> str:
        """Everything the app said, joined: handy for 'was X said' checks."""
        return " ".join(line.text for line in self.transcript if line.speaker == "APP")


class OfflinePhone:
    """A phone network of one line: drives the app through ``transport`` like Twilio."""

    def __init__(
        self,
        transport: Transport,
        *,
        auth_token: str,
        account_sid: str,
        public_base_url: str,
        clock: SimulatedClock | None = None,
        strict: bool = True,
        duplicate_requests: bool = False,
        seed: int | None = None,
    ):
        self.transport = transport
        self.validator = _Signer(auth_token)
        self.account_sid = account_sid
        self.base_url = public_base_url.rstrip("/")
        self.clock = clock
        self.strict = strict
        self.duplicate_requests = duplicate_requests
        self._random = random.Random(seed)
        self._sids = itertools.count(1)

    # --- placing calls ------------------------------------------------------------------------

    def new_call_sid(self) -> str:
        return f"CA{self._random.getrandbits(128):032x}"

    def call(
        self,
        caller: Caller,
        *,
        from_: str,
        to: str,
        direction: str = "inbound",
        call_sid: str | None = None,
        answered_by: str | None = None,
        answer_url: str | None = None,
        status_callback: str | None = None,
        status_events: tuple[str, ...] = DEFAULT_EVENTS,
        fallback_url: str | None = None,
    ) -> CallResult:
        """Connect a call and play it to the end; return its transcript and outcome."""
        run = _CallRun(self, caller, call_sid or self.new_call_sid(), from_, to, direction, answered_by, fallback_url)
        status_callback = status_callback or self.base_url + "/voice/status"
        run.connect(answer_url or self.base_url + "/voice/answer", status_callback, status_events)
        return run.end(status_callback)

    def ring_out(
        self,
        *,
        outcome: str,
        from_: str,
        to: str,
        call_sid: str,
        status_callback: str | None = None,
        direction: str = "outbound-api",
        ring_seconds: int = 30,
        status_events: tuple[str, ...] = DEFAULT_EVENTS,
    ) -> CallResult:
        """A call nobody answers (``no-answer``), that is ``busy``, or that ``failed``."""
        if outcome not in ("no-answer", "busy", "failed", "canceled"):
            raise ValueError(f"not an unanswered outcome: {outcome}")
        run = _CallRun(self, None, call_sid, from_, to, direction, None, None)
        status_callback = status_callback or self.base_url + "/voice/status"
        if outcome == "no-answer":
            if "ringing" in status_events:
                run.status_callback(status_callback, "ringing")
            run.wait(ring_seconds)
        run.result.transcript.append(Line("--", f"call {outcome}"))
        run.result.status = outcome
        run.status_callback(status_callback, outcome, duration=True)
        return run.result

    # --- the wire ----------------------------------------------------------------------------

    def sign(self, url: str, params: dict[str, str]) -> str:
        return self.validator.compute_signature(url, params)

    def request(self, method: str, url: str, params: dict[str, str]) -> HttpResponse:
        if method == "GET":
            url = url + ("&" if "?" in url else "?") + urlencode(params)
            params = {}
        headers = {"X-Twilio-Signature": self.sign(url, params)}
        response = self.transport.send(method, url, params, headers)
        if self.duplicate_requests:
            again = self.transport.send(method, url, params, headers)
            if self.strict and (again.status, again.body) != (response.status, response.body):
                raise PhoneError(f"a duplicate delivery of {url} got a different answer")
            response = again
        return response


class _CallRun:
    """One call in progress."""

    def __init__(
        self,
        phone: OfflinePhone,
        caller: Caller | None,
        call_sid: str,
        from_: str,
        to: str,
        direction: str,
        answered_by: str | None,
        fallback_url: str | None,
    ):
        self.phone, self.caller = phone, caller
        self.base_params = {
            "CallSid": call_sid,
            "AccountSid": phone.account_sid,
            "From": from_,
            "To": to,
            "Caller": from_,
            "Called": to,
            "Direction": direction,
            "ApiVersion": API_VERSION,
        }
        self.answered_by = answered_by
        self.fallback_url = fallback_url
        self.elapsed = 0.0
        self.requests = 0
        self.result = CallResult(call_sid=call_sid, status="completed", duration_s=0, answered_by=answered_by)
        self.document: HttpResponse | None = None  # the TwiML document being played
        self.position = (0, "")  # the verb being played in it, and the document's URL

    def wait(self, seconds: float) -> None:
        self.elapsed += seconds
        if self.phone.clock is not None:
            self.phone.clock.advance(seconds)

    def note(self, speaker: str, text: str) -> None:
        self.result.transcript.append(Line(speaker, text))

    # --- webhooks -------------------------------------------------------------------------------

    def status_callback(self, url: str, status: str, duration: bool = False) -> None:
        params = {**self.base_params, "CallStatus": status, "CallbackSource": "call-progress-events"}
        if duration:
            params["CallDuration"] = str(int(round(self.elapsed)))
            self.result.duration_s = int(round(self.elapsed))
        if self.answered_by:
            params["AnsweredBy"] = self.answered_by
        response = self.phone.request("POST", url, params)
        self.result.exchanges.append(Exchange(url, params, response.status, response.body))
        if self.phone.strict and response.status >= 400:
            raise PhoneError(f"status callback {status} got HTTP {response.status}")

    def fetch(self, method: str, url: str, extra: dict[str, str]) -> list[twiml.Verb] | None:
        """Request TwiML; on an error do what Twilio does (fallback URL, else end the call)."""
        self.requests += 1
        if self.requests > MAX_REQUESTS_PER_CALL:
            raise PhoneError(f"more than {MAX_REQUESTS_PER_CALL} requests in one call: a loop?")
        params = {**self.base_params, "CallStatus": "in-progress", **extra}
        if self.answered_by:
            params["AnsweredBy"] = self.answered_by
        response = self.phone.request(method, url, params)
        self.result.exchanges.append(Exchange(url, params, response.status, response.body))
        try:
            if response.status != 200:
                raise twiml.TwimlError(11200, f"HTTP {response.status} from {url}")
            verbs = twiml.parse(response.body, response.content_type)
            self.document = response  # the document being played, for a call that pauses in it
            return verbs
        except twiml.TwimlError as exc:
            if self.phone.strict:
                raise PhoneError(f"{url}: {exc}") from exc
            if self.fallback_url and url != self.fallback_url:
                return self.fetch("POST", self.fallback_url, {"ErrorCode": str(exc.code), "ErrorUrl": url})
            self.note("--", f"application error {exc.code}; Twilio ends the call")
            return None

    # --- the interpreter -----------------------------------------------------------------------

    def connect(self, answer_url: str, status_callback: str, status_events: tuple[str, ...]) -> None:
        """Ring (reported only if asked for), answer, and play the call until it ends."""
        if "ringing" in status_events:
            self.status_callback(status_callback, "ringing")
        self.play(answer_url, status_callback if "answered" in status_events else None)

    def end(self, status_callback: str) -> CallResult:
        """The call is over: send the final status callback and return the result."""
        self.status_callback(status_callback, "completed", duration=True)
        return self.result

    def play(self, answer_url: str, answered_callback: str | None) -> None:
        url = answer_url
        document = self.fetch("POST", url, {})
        if answered_callback:
            self.status_callback(answered_callback, "in-progress")
        self.run(document, url)

    def run(self, document: list[twiml.Verb] | None, url: str, start: int = 0, resumed: bool = False) -> None:
        """Play documents until the call ends, from verb ``start`` of the first one.

        ``resumed``: the verb at ``start`` is a Gather whose prompts were already played (a call
        that paused there for its caller, see ``ivr_cbt.simulator.interactive``).
        """
        while document is not None:
            document, url = self.run_document(document, url, start, resumed)
            start, resumed = 0, False

    def run_document(
        self, verbs: list[twiml.Verb], url: str, start: int = 0, resumed: bool = False
    ) -> tuple[list[twiml.Verb] | None, str]:
        """Play one document; return the next document (and its URL), or None when the call ends."""
        for index in range(start, len(verbs)):
            verb = verbs[index]
            self.position = (index, url)
            if isinstance(verb, twiml.Say | twiml.Play | twiml.Pause):
                self.speak(verb)
            elif isinstance(verb, twiml.Gather):
                outcome = self.gather(verb, prompts_played=resumed and index == start)
                if outcome == "hangup":
                    return None, url
                if outcome is not None:
                    target = urljoin(url, verb.action) if verb.action else url
                    return self.fetch(verb.method, target, outcome), target
            elif isinstance(verb, twiml.Redirect):
                target = urljoin(url, verb.url)
                return self.fetch(verb.method, target, {}), target
            elif isinstance(verb, twiml.Dial):
                self.note("APP", f"[dials {verb.number}]")
                self.wait(60)
                self.note("--", "dialled call completed")
                if verb.action:
                    target = urljoin(url, verb.action)
                    return self.fetch(
                        verb.method, target, {"DialCallStatus": "completed", "DialCallDuration": "60"}
                    ), target
            elif isinstance(verb, twiml.Hangup):
                self.note("--", "app hangs up")
                return None, url
            elif isinstance(verb, twiml.Reject):
                self.note("--", f"app rejects the call ({verb.reason})")
                self.result.status = "busy" if verb.reason == "busy" else "no-answer"
                return None, url
        self.note("--", "end of TwiML: call ends")
        return None, url

    def speak(self, verb: twiml.Say | twiml.Play | twiml.Pause) -> None:
        loops = max(1, getattr(verb, "loop", 1))
        if isinstance(verb, twiml.Say):
            self.note("APP", verb.text)
            self.wait(loops * max(1.0, len(verb.text.split()) / WORDS_PER_SECOND))
        elif isinstance(verb, twiml.Play):
            self.note("APP", f"[plays {verb.url}]")
            self.wait(loops * 3.0)
        else:
            self.wait(verb.length)

    def gather(self, gather: twiml.Gather, prompts_played: bool = False) -> dict[str, str] | str | None:
        """Play a Gather; return the params to submit, None to fall through, or "hangup"."""
        for child in () if prompts_played else gather.children:
            self.speak(child)
        action = self.caller.respond(gather) if self.caller else HangUp()
        if isinstance(action, HangUp):
            self.note("CALLER", "hangs up")
            return "hangup"
        if isinstance(action, Press) and "dtmf" in gather.input:
            digits, finished = self.collect(gather, action.keys)
            self.note("CALLER", f"presses {action.keys}")
            if not finished:
                self.wait(gather.timeout)
            if digits:
                return {"Digits": digits, "FinishedOnKey": gather.finish_on_key if finished == "key" else ""}
        elif isinstance(action, Speak) and "speech" in gather.input:
            self.note("CALLER", f'says "{action.text}" (confidence {action.confidence:.2f})')
            self.wait(len(action.text.split()) / WORDS_PER_SECOND + 1)
            return {"SpeechResult": action.text, "Confidence": f"{action.confidence:.2f}", "Language": gather.language}
        else:
            if isinstance(action, Silence):
                self.note("CALLER", "(silence)")
            else:
                self.note(
                    "CALLER",
                    f"({type(action).__name__.lower()} ignored: Gather takes {' '.join(sorted(gather.input))})",
                )
            self.wait(gather.timeout)
        if gather.action_on_empty_result:
            return {"Digits": ""}
        return None

    def collect(self, gather: twiml.Gather, keys: str) -> tuple[str, str | None]:
        """Collect keys like Twilio: return the digits sent and what ended collection."""
        digits = ""
        for key in keys:
            self.wait(KEY_SECONDS)
            if gather.finish_on_key and key == gather.finish_on_key:
                if digits:
                    return digits, "key"
                continue  # finishOnKey only counts after a digit
            digits += key
            if gather.num_digits and len(digits) >= gather.num_digits:
                return digits, "count"
        return digits, None
