"""Cookie sessions only where people browse: none for Twilio's webhooks or media.

Twilio keeps no cookies, so a session there is never read; opening and saving one costs
about 0.1 ms a request (a signing serializer is built each time), a tenth of a webhook turn.
"""

from __future__ import annotations

from flask.sessions import NullSession, SecureCookieSessionInterface

STATELESS_PREFIXES = ("/voice/", "/media/")


class SessionInterface(SecureCookieSessionInterface):
    def open_session(self, app, request):
        if request.path.startswith(STATELESS_PREFIXES):
            return self.make_null_session(app)
        return super().open_session(app, request)

    def save_session(self, app, session, response):
        if isinstance(session, NullSession):
            return
        super().save_session(app, session, response)
