"""How the offline phone reaches the app: in-process (a direct WSGI call, or Flask's test
client) or over HTTP. All three run the app's full request path: routing, signature check,
form parsing, views, teardown."""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol
from urllib.parse import quote_plus, urlsplit

import requests
from flask import Flask


@dataclass(frozen=True)
class HttpResponse:
    status: int
    content_type: str
    body: str


class Transport(Protocol):
    def send(self, method: str, url: str, params: dict[str, str], headers: dict[str, str]) -> HttpResponse:
        """Send a webhook request to the app at ``url`` (the public URL Twilio would use)."""


@lru_cache(maxsize=8192)
def _form_pair(name: str, value: str) -> str:
    """One ``name=value`` of a form body, encoded as ``urlencode`` does. A call's requests repeat
    most of their parameters (CallSid, From, To ...): each pair is encoded once."""
    return f"{quote_plus(name)}={quote_plus(str(value))}"


def form_body(params: dict[str, str]) -> bytes:
    """``application/x-www-form-urlencoded`` body of ``params`` (what ``urlencode`` gives)."""
    return "&".join([_form_pair(name, value) for name, value in params.items()]).encode()


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


class FlaskTransport:
    """Drive the app in this process, through Werkzeug's test client."""

    def __init__(self, app: Flask):
        self.client = app.test_client()

    def send(self, method: str, url: str, params: dict[str, str], headers: dict[str, str]) -> HttpResponse:
        response = self.client.open(
            _path(url), method=method, data=params if method == "POST" else None, headers=headers
        )
        return HttpResponse(response.status_code, response.content_type or "", response.get_data(as_text=True))


class WsgiTransport:
    """Call the app's WSGI entry point directly: the test client's request building, cookie
    jar and response wrapping cost more than a webhook turn itself, so simulations use this."""

    def __init__(self, app: Flask):
        self.app = app

    def send(self, method: str, url: str, params: dict[str, str], headers: dict[str, str]) -> HttpResponse:
        parts = urlsplit(url)
        body = form_body(params) if method == "POST" else b""
        environ = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": parts.path,
            "QUERY_STRING": parts.query,
            "SERVER_NAME": parts.hostname or "localhost",
            "SERVER_PORT": str(parts.port or (443 if parts.scheme == "https" else 80)),
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": parts.netloc,
            "CONTENT_TYPE": "application/x-www-form-urlencoded" if method == "POST" else "",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": parts.scheme,
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in headers.items():
            environ["HTTP_" + name.upper().replace("-", "_")] = value
        started: list = []

        def start_response(status, response_headers, exc_info=None):
            started[:] = [status, response_headers]

        chunks = self.app(environ, start_response)
        try:
            data = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
        content_type = next((v for k, v in started[1] if k.lower() == "content-type"), "")
        return HttpResponse(int(started[0].split(" ", 1)[0]), content_type, data.decode("utf-8"))


class HttpTransport:
    """Drive an app served over HTTP; ``server_url`` is where it listens (e.g. gunicorn)."""

    def __init__(self, server_url: str, timeout_s: float = 15.0):
        self.server_url = server_url.rstrip("/")
        self.session = requests.Session()
        self.timeout_s = timeout_s  # Twilio's own budget per request

    def send(self, method: str, url: str, params: dict[str, str], headers: dict[str, str]) -> HttpResponse:
        response = self.session.request(
            method,
            self.server_url + _path(url),
            data=params if method == "POST" else None,
            headers=headers,
            timeout=self.timeout_s,
        )
        return HttpResponse(response.status_code, response.headers.get("Content-Type", ""), response.text)
