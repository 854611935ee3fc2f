"""A dispatcher process for the multi-process tests: the app from ``create_app``, ticking until idle.

Started with multiprocessing's "spawn" (a fresh interpreter, as a separate scheduler process
would be), so nothing is shared with the test process but the database and the record file.
"""

from __future__ import annotations

import os
from datetime import datetime

from ivr_cbt import create_app
from ivr_cbt.scheduling import process


def dispatch_until_idle(config: dict, now_iso: str, start, report) -> None:
    """Build the app, wait for the others at ``start`` (a Barrier), tick at ``now`` until a tick claims nothing.

    Puts (pid, ticks, claimed, placed) on the ``report`` queue.
    """
    app = create_app(config)
    dispatcher = process.dispatcher(app)
    now = datetime.fromisoformat(now_iso)
    start.wait(timeout=120)
    ticks = claimed = placed = 0
    while True:
        tick = dispatcher.tick(now)
        ticks += 1
        claimed += tick.claimed
        placed += tick.placed
        if not tick.claimed:
            break
    app.extensions["db_engine"].dispose()
    report.put((os.getpid(), ticks, claimed, placed))
