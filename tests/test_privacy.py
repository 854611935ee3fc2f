"""Protected health information stays out of logs and URLs."""

from __future__ import annotations

import logging

from .conftest import T0


def test_logs_never_carry_names_numbers_pins_or_answers(app, add_patient, call, caplog):
    patient = add_patient(name="Zelda Quintero", phone="+12025550177", pin="8642")
    caplog.set_level(logging.DEBUG)
    call(patient, "0000,8642,7,speech:six@0.3,1,31337#,5,1,2", now=T0)
    call(patient, "8642", direction="inbound", now=T0)
    call(patient, "", answered_by="machine_start", now=T0)
    assert caplog.records, "the calls should have logged something"
    logged = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    for secret in ("Zelda", "Quintero", "+12025550177", "2025550177", "8642", "31337", "speech", "six"):
        assert secret not in logged, secret
    assert "safety alert" in logged  # the alert is logged, by id


def test_the_twilio_client_logger_is_quiet_below_warning(app):
    assert logging.getLogger("twilio.http_client").getEffectiveLevel() >= logging.WARNING
