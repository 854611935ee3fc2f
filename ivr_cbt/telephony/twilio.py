"""The Twilio adapter: the real REST client, with an explicit HTTP timeout."""

from __future__ import annotations

import logging

import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from ivr_cbt.telephony.base import CallRequest, PlacedCall, TelephonyError

# twilio-python logs REST URLs and form parameters (phone numbers) at INFO.
logging.getLogger("twilio.http_client").setLevel(logging.WARNING)


class TwilioTelephony:
    def __init__(
        self, account_sid: str, auth_token: str, *, from_number: str, timeout_s: float, base_url: str | None = None
    ):
        self.from_number = from_number
        # The default HTTP client has no timeout at all; a hung request would hang a dispatcher.
        self.client = Client(account_sid, auth_token, http_client=TwilioHttpClient(timeout=timeout_s))
        if base_url:  # an offline contract double such as Prism
            self.client.api.base_url = base_url

    def place_call(self, request: CallRequest) -> PlacedCall:
        try:
            call = self.client.calls.create(
                to=request.to,
                from_=request.from_,
                url=request.answer_url,
                method="POST",
                status_callback=request.status_callback_url,
                status_callback_method="POST",
                status_callback_event=list(request.status_events),
                machine_detection="Enable" if request.machine_detection else None,
                timeout=request.ring_timeout_s,
                time_limit=request.time_limit_s,
            )
        except TwilioRestException as exc:
            # Twilio answered with an error: the call was not created.
            raise TelephonyError(f"Twilio refused the call: {exc.code}", ambiguous=False) from exc
        except requests.RequestException as exc:
            # Timeouts and dropped connections: Twilio may have created the call.
            raise TelephonyError(f"no clear answer from Twilio: {type(exc).__name__}", ambiguous=True) from exc
        return PlacedCall(sid=call.sid)

    def send_sms(self, to: str, body: str) -> str:
        try:
            message = self.client.messages.create(to=to, from_=self.from_number, body=body)
        except (TwilioRestException, requests.RequestException) as exc:
            raise TelephonyError(
                f"SMS failed: {type(exc).__name__}", ambiguous=isinstance(exc, requests.RequestException)
            ) from exc
        return message.sid
