"""How the offline phone reaches the app: in-process (Flask test client) or over HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

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


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


class FlaskTransport:
    """Drive the app in this process, through Werkzeug's test client."""

    def __init__(self, app: Flask):
        self.client = app.test_client()

    def send(self, method: str, url: str, params: dict[str, str], headers: dict[str, str]) -> HttpResponse:
        response = self.client.open(_path(url), method=method, data=params if method == "POST" else None, headers=headers)
        return HttpResponse(response.status_code, response.content_type or "", response.get_data(as_text=True))


class HttpTransport:
    """Drive an app served over HTTP; ``server_url`` is where it listens (e.g. gunicorn)."""

    def __init__(self, server_url: str, timeout_s: float = 15.0):
        self.server_url = server_url.rstrip("/")
        self.session = requests.Session()
        self.timeout_s = timeout_s  # Twilio's own budget per request

    def send(self, method: str, url: str, params: dict[str, str], headers: dict[str, str]) -> HttpResponse:
        response = self.session.request(
            method, self.server_url + _path(url), data=params if method == "POST" else None, headers=headers, timeout=self.timeout_s
        )
        return HttpResponse(response.status_code, response.headers.get("Content-Type", ""), response.text)
