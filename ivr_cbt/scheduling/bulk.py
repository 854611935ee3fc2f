"""Set-based statements the dispatch tick runs over a whole batch at once, per database.

A tick may handle DISPATCH_BATCH (default 500) attempts: one statement per
attempt, or one IN list of 1,000 placeholders, costs more than the work itself (round trips,
commits, and on PostgreSQL statements too long for the driver's parse cache). Statements are
built once (a statement made afresh from its values is also compiled afresh every time).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from functools import cache

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ivr_cbt.db import is_one_of
from ivr_cbt.models import AttemptState, Call, CallAttempt

_attempts, _calls = CallAttempt.__table__, Call.__table__
# Only an attempt still waiting to hear from the provider becomes placed: a webhook that came
# first (the mock adapter answers during place_call; Twilio may be quick) may have moved it on.
_MAYBE_PLACED = is_one_of(_attempts.c.state, [AttemptState.PLACING.value, AttemptState.AMBIGUOUS.value])
_CALL_NAMES = ("call_sid", "patient_id", "attempt_id", "language", "flow_id")


def one_of(dialect_name: str, column: sa.Column, values: Collection) -> sa.ColumnElement[bool]:
    """``column IN (values)``; on PostgreSQL ``column = ANY(array)``, one parameter however many values."""
    if dialect_name == "postgresql":
        return column == sa.any_(sa.bindparam(None, list(values), type_=postgresql.ARRAY(column.type)))
    return column.in_(list(values))


def record_placed(conn: sa.Connection, accepted: Sequence[tuple[sa.Row, str]], now: datetime) -> None:
    """The provider accepted these calls (claimed attempt row, call sid): one UPDATE marks the attempts
    placed with their sids, one INSERT gives each call its row. Does not commit.

    A call row a webhook made first keeps its values and only gains its patient and attempt (a
    status callback that beats us makes a row without them).
    """
    if not accepted:
        return
    if conn.dialect.name == "postgresql":
        mark, insert = _postgresql_statements()
        conn.execute(mark, {"ids": [a.id for a, _ in accepted], "sids": [sid for _, sid in accepted], "now": now})
        columns = {f"{name}s": [] for name in _CALL_NAMES}
        for attempt, sid in accepted:
            for name, value in zip(_CALL_NAMES, _call_values(attempt, sid), strict=True):
                columns[f"{name}s"].append(value)
        conn.execute(insert, {**columns, "now": now})
        return
    marks: dict = {"now": now}
    for k, (attempt, sid) in enumerate(accepted):
        marks[f"id{k}"], marks[f"sid{k}"] = attempt.id, sid
    conn.execute(_sqlite_mark(len(accepted)), marks)
    conn.execute(
        _sqlite_insert(),
        [
            {**dict(zip(_CALL_NAMES, _call_values(attempt, sid), strict=True)), "created_at": now}
            for attempt, sid in accepted
        ],
    )


def _call_values(attempt: sa.Row, sid: str) -> tuple:
    return sid, attempt.patient_id, attempt.id, attempt.language, attempt.flow_id


def _param(name: str, column: sa.Column, *, array: bool = False) -> sa.BindParameter:
    return sa.bindparam(name, type_=postgresql.ARRAY(column.type) if array else column.type)


def _marked(sid: sa.ColumnElement) -> dict:
    """SET values of an attempt the provider accepted."""
    return {
        "state": sa.case((_MAYBE_PLACED, AttemptState.PLACED.value), else_=_attempts.c.state),
        "updated_at": sa.case((_MAYBE_PLACED, _param("now", _attempts.c.updated_at)), else_=_attempts.c.updated_at),
        "call_sid": sa.func.coalesce(_attempts.c.call_sid, sid),
    }


def _upsert(insert):
    """ON CONFLICT (call_sid): fill in only what a row made by a webhook lacks."""
    return insert.on_conflict_do_update(
        index_elements=[_calls.c.call_sid],
        set_={
            "patient_id": sa.func.coalesce(_calls.c.patient_id, insert.excluded.patient_id),
            "attempt_id": sa.func.coalesce(_calls.c.attempt_id, insert.excluded.attempt_id),
        },
    )


_CALL_CONSTANTS = {"direction": "outbound-api", "status": "queued", "step": 0}


@cache
def _sqlite_mark(size: int) -> sa.Update:
    """UPDATE ... SET call_sid = CASE id WHEN :id0 THEN :sid0 ... END WHERE id IN (:id0, ...), per size."""
    ids = [_param(f"id{k}", _attempts.c.id) for k in range(size)]
    sids = sa.case(*((_attempts.c.id == ids[k], _param(f"sid{k}", _attempts.c.call_sid)) for k in range(size)))
    return sa.update(_attempts).where(_attempts.c.id.in_(ids)).values(**_marked(sids))


@cache
def _sqlite_insert() -> sa.Insert:
    # Executed with a list of rows: with RETURNING, SQLAlchemy sends them as one multi-row INSERT
    # ("insertmanyvalues") rather than one statement per row.
    insert = sqlite.insert(_calls).values(_CALL_CONSTANTS)
    return _upsert(insert).returning(_calls.c.id)


@cache
def _postgresql_statements() -> tuple[sa.Update, sa.Insert]:
    """The same two statements over arrays (``unnest``): short, and the same whatever the number of calls."""
    placed = (
        sa.func.unnest(_param("ids", _attempts.c.id, array=True), _param("sids", _attempts.c.call_sid, array=True))
        .table_valued("id", "sid")
        .render_derived()
    )
    mark = sa.update(_attempts).where(_attempts.c.id == placed.c.id).values(**_marked(placed.c.sid))
    rows = (
        sa.func.unnest(*(_param(f"{name}s", _calls.c[name], array=True) for name in _CALL_NAMES))
        .table_valued(*_CALL_NAMES)
        .render_derived()
    )
    values = sa.select(
        *(rows.c[name] for name in _CALL_NAMES),
        *(sa.literal(value) for value in _CALL_CONSTANTS.values()),
        _param("now", _calls.c.created_at),
    )
    insert = postgresql.insert(_calls).from_select([*_CALL_NAMES, *_CALL_CONSTANTS, "created_at"], values)
    return mark, _upsert(insert)
