"""Cookie sessions only where people browse: none for Twilio's webhooks or media.

Twilio keeps no cookies, so a session there would never be read; skip the work of opening and
saving one (a signing serializer is built each time).
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
