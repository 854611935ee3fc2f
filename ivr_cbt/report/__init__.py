"""The trial-style outcome report: per-arm pain change, non-inferiority, responders, adherence.

Layers, each testable alone:

* ``extract``  -- set-based queries that return grouped counts (the only module that reads the DB);
* ``stats``    -- pure statistics on numbers (statsmodels / SciPy);
* ``outcomes`` -- pure assembly of the report's JSON form from counts, options and ``as_of``;
* ``render``, ``plots`` -- Markdown, HTML, JSON and matplotlib figures from that JSON form.

Importing this package loads statsmodels and matplotlib only when a report is made: the CLI
imports it inside the command.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

from ivr_cbt import audit
from ivr_cbt.report.extract import SYNTHETIC_ACTION, extract, mark_synthetic
from ivr_cbt.report.outcomes import Options, ReportError, build

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["SYNTHETIC_ACTION", "Options", "ReportError", "mark_synthetic", "outcome_report"]


def outcome_report(
    engine: sa.Engine,
    options: Options,
    *,
    now: datetime,
    actor: str,
    items: Sequence[str] = (),
    as_of: datetime | None = None,
) -> dict:
    """Compute the outcome report from one consistent snapshot and audit the view; return its JSON form.

    ``now`` stamps the report and the audit row; ``as_of`` (default ``now``) decides which program
    weeks each patient has reached. ``items`` orders the per-question tables (the flow's order).
    """
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            # All queries see the same snapshot while calls keep arriving.
            conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            data = extract(conn, options.timepoints(), window=options.window)
            report = build(data, options, now=now, as_of=as_of or now, items=items)
            audit.record(
                conn,
                now,
                actor,
                "report_outcomes",
                months=options.months,
                margin=options.margin,
                reference_arm=report["reference_arm"],
                patients=sum(data.enrolled.values()),
                synthetic=report["synthetic"],
            )
    return report
