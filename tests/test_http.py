"""The offline phone over real HTTP: the same call as in-process, through a listening server."""

from __future__ import annotations

import threading

import pytest
from werkzeug.serving import make_server

from ivr_cbt.simulator import HttpTransport, OfflinePhone, ScriptedCaller

from .conftest import AUTH_TOKEN, PROGRAM_NUMBER, PUBLIC_BASE_URL
from .helpers import checkins


@pytest.fixture
def server_url(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


def test_a_whole_call_over_http_matches_the_in_process_call(app, server_url, add_patient, call):
    over_http = add_patient(phone="+12025550161")
    in_process = add_patient(phone="+12025550162")
    phone = OfflinePhone(
        HttpTransport(server_url), auth_token=AUTH_TOKEN, account_sid="AC" + "0" * 32, public_base_url=PUBLIC_BASE_URL
    )
    result = phone.call(ScriptedCaller.parse("1234,5,7,4200#,3,2"), from_="+12025550161", to=PROGRAM_NUMBER)
    reference = call(in_process, "1234,5,7,4200#,3,2", direction="inbound")
    assert result.text() == reference.text()
    assert all(exchange.status in (200, 204) for exchange in result.exchanges)
    assert checkins(app, over_http)[0]["answers"] == checkins(app, in_process)[0]["answers"]
