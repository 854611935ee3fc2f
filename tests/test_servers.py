"""The app starts under the development server and under gunicorn, and answers signed webhooks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from twilio.request_validator import RequestValidator

from ivr_cbt import db

from .helpers import answer_params, sid

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)  # polling for the port to open, not papering over a race
    raise AssertionError("server did not start")


@pytest.mark.slow
@pytest.mark.parametrize("server", ["manage.py serve", "gunicorn"])
def test_the_app_serves_signed_webhooks(server, tmp_path):
    url = f"sqlite:///{tmp_path / 'serve.sqlite'}"
    db.upgrade_database(url)
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DATABASE_URL": url, "PUBLIC_BASE_URL": public, "TWILIO_AUTH_TOKEN": "serve-token"}
    if server == "gunicorn":
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "ivr_cbt:create_app()",
        ]
    else:
        command = [sys.executable, "manage.py", "serve", "--port", str(port)]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(port, process)
        params = answer_params(sid(1), from_="+12025550100")
        unsigned = requests.post(public + "/voice/answer", data=params, timeout=10)
        assert unsigned.status_code == 403
        signature = RequestValidator("serve-token").compute_signature(public + "/voice/answer", params)
        signed = requests.post(
            public + "/voice/answer", data=params, headers={"X-Twilio-Signature": signature}, timeout=10
        )
        assert signed.status_code == 200 and "patient code" in signed.text
    finally:
        process.terminate()
        process.wait(10)
