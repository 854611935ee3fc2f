"""FHIR R4 export: the weekly log as a Bundle of Observation resources, for import into an EHR.

* Average pain carries LOINC 72514-3 (pain severity, 0-10 verbal numeric rating, reported).
* No standard code was found for the other items as we ask them (a week's average steps, sleep
  quality 0-10, practice days, the adapted safety question), so they carry a code from this
  deployment's own code system, ``<PUBLIC_BASE_URL>/fhir/CodeSystem/checkin-item``, rather than
  an invented or near-miss LOINC code. Pain carries that code too.
* Patients are named by an identifier in ``<PUBLIC_BASE_URL>/fhir/NamingSystem/patient-id``: the
  EHR maps it to its own record; the bundle holds no name or phone number.
* Resource ids are UUIDv5 of (patient, week, item), so exporting twice gives the same ids and an
  import can be repeated safely.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, time
from zoneinfo import ZoneInfo

from ivr_cbt.callflow.spec import Item
from ivr_cbt.dashboard.weekly import PatientWeeks, Week
from ivr_cbt.models import CheckinStatus

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
LOINC_CODES = {"pain_avg": ("72514-3", "Pain severity - 0-10 verbal numeric rating [Score] - Reported")}
UCUM_UNITS = {"steps per day": "{steps}/d", "days": "d"}
NAMESPACE = uuid.UUID("6f1b7a86-3c1e-5b0a-9d4e-2f7c1a9e8b50")


def _local_midnight(log: PatientWeeks, week: int) -> str:
    day = log.starts(week)
    return datetime.combine(day, time(0), ZoneInfo(log.patient.timezone)).isoformat()


def _value(item: Item, value: int, answers_system: str) -> dict:
    if item.direction == "nominal":
        text = item.anchors.get(str(value), str(value))
        return {
            "valueCodeableConcept": {
                "coding": [{"system": f"{answers_system}/{item.key}", "code": str(value), "display": text}],
                "text": text,
            }
        }
    if item.unit in UCUM_UNITS:
        return {"valueQuantity": {"value": value, "unit": item.unit, "system": UCUM, "code": UCUM_UNITS[item.unit]}}
    return {"valueInteger": value}


def observation(log: PatientWeeks, week: Week, item: Item, value: int, base_url: str) -> dict:
    local = f"{base_url}/fhir/CodeSystem/checkin-item"
    coding = [{"system": local, "code": item.key, "display": item.label or item.key}]
    if item.key in LOINC_CODES:
        code, display = LOINC_CODES[item.key]
        coding.insert(0, {"system": LOINC, "code": code, "display": display})
    resource_id = str(uuid.uuid5(NAMESPACE, f"{base_url}|{log.patient.id}|{week.week}|{item.key}"))
    resource = {
        "resourceType": "Observation",
        "id": resource_id,
        "status": "final" if week.status == CheckinStatus.COMPLETE else "preliminary",
        "category": [{"coding": [{"system": CATEGORY, "code": "survey", "display": "Survey"}]}],
        "code": {"coding": coding, "text": item.label or item.key},
        "subject": {"identifier": {"system": f"{base_url}/fhir/NamingSystem/patient-id", "value": str(log.patient.id)}},
        "effectivePeriod": {"start": _local_midnight(log, week.week), "end": _local_midnight(log, week.week + 1)},
        **_value(item, value, f"{base_url}/fhir/CodeSystem/checkin-answer"),
        "method": {"text": "automated telephone check-in (keypad or speech)"},
    }
    issued = week.completed_at or week.updated_at
    if issued is not None:
        resource["issued"] = issued.isoformat()
    return resource


def bundle(logs: Sequence[PatientWeeks], items: Mapping[str, Item], *, base_url: str, now: datetime) -> dict:
    """A collection Bundle with one Observation per answered item per week."""
    entries = []
    for log in logs:
        for week in log.weeks:
            for key, item in items.items():
                value = week.value(key)
                if value is not None:
                    resource = observation(log, week, item, value, base_url)
                    entries.append({"fullUrl": f"urn:uuid:{resource['id']}", "resource": resource})
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "collection",
        "timestamp": now.isoformat(),
        "entry": entries,
    }
