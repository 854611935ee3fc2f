"""Out-of-band notice of a new alert to the on-call clinician (ALERT_NOTIFY_NUMBER).

The alert row is already committed when this runs, so a failed text loses nothing: the
alert stays open, and ``notified_at`` stays empty until a notice goes out. The text carries
the alert id only, never who or why.
"""

from __future__ import annotations

import logging
from datetime import datetime

import sqlalchemy as sa

from ivr_cbt import audit
from ivr_cbt.models import Alert
from ivr_cbt.telephony import Telephony, TelephonyError

log = logging.getLogger(__name__)
_alerts = Alert.__table__


def notify(conn: sa.Connection, telephony: Telephony, alert_ids: list[int], *, number: str, now: datetime) -> int:
    """Text the on-call number about each alert; return how many notices went out."""
    if not number:
        return 0
    sent = 0
    for alert_id in alert_ids:
        alert = conn.execute(sa.select(_alerts).where(_alerts.c.id == alert_id)).one_or_none()
        if alert is None or alert.notified_at is not None:
            continue
        try:
            telephony.send_sms(number, f"ivr-cbt: {alert.kind} alert #{alert.id} needs review. Open the dashboard.")
        except TelephonyError as exc:
            log.error("alert %s: notice failed (%s)", alert.id, exc)
            audit.record(conn, now, "system", "alert_notice_failed", patient_id=alert.patient_id, alert_id=alert.id)
            continue
        conn.execute(sa.update(_alerts).where(_alerts.c.id == alert.id).values(notified_at=now))
        audit.record(conn, now, "system", "alert_notified", patient_id=alert.patient_id, alert_id=alert.id)
        sent += 1
    conn.commit()
    return sent
