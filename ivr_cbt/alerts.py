"""Out-of-band notice of a new alert to the on-call clinician (ALERT_NOTIFY_NUMBER).

The alert row is already committed when this runs, so a failed text loses nothing: the
alert stays open, and ``notified_at`` stays empty until a notice goes out. The text carries
the alert id only, never who or why.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import orm

from ivr_cbt import audit
from ivr_cbt.models import Alert
from ivr_cbt.telephony import Telephony, TelephonyError

log = logging.getLogger(__name__)


def notify(session: orm.Session, telephony: Telephony, alert_ids: list[int], *, number: str, now: datetime) -> int:
    """Text the on-call number about each alert; return how many notices went out."""
    if not number:
        return 0
    sent = 0
    for alert_id in alert_ids:
        alert = session.get(Alert, alert_id)
        if alert is None or alert.notified_at is not None:
            continue
        try:
            telephony.send_sms(number, f"ivr-cbt: {alert.kind} alert #{alert.id} needs review. Open the dashboard.")
        except TelephonyError as exc:
            log.error("alert %s: notice failed (%s)", alert.id, exc)
            audit.record(session, now, "system", "alert_notice_failed", patient_id=alert.patient_id, alert_id=alert.id)
            continue
        alert.notified_at = now
        audit.record(session, now, "system", "alert_notified", patient_id=alert.patient_id, alert_id=alert.id)
        sent += 1
    session.commit()
    return sent
