"""Schema: the migration matches the models on every backend; SQLite settings; UTC times."""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from ivr_cbt import db
from ivr_cbt.models import AuditEvent, Base


def test_the_migrated_schema_matches_the_models(app):
    engine = app.extensions["db_engine"]
    with engine.connect() as connection:
        context = MigrationContext.configure(connection)
        assert compare_metadata(context, Base.metadata) == []


def test_sqlite_runs_with_foreign_keys_and_wal(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'pragmas.sqlite'}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10000
    engine.dispose()


def _queue_taken(path) -> bool:
    """Whether some connection holds the database's writer queue (a probe that never waits)."""
    probe = db.WriterQueue(f"{path}-writer", timeout_s=0)
    try:
        return not probe.acquire()
    finally:
        probe.close()


def test_sqlite_writers_take_turns_on_the_writer_queue(tmp_path):
    """A transaction holds the file's writer queue from BEGIN to COMMIT or ROLLBACK, and lets go
    of it however it ends; the next writer then gets it at once."""
    path = tmp_path / "queue.sqlite"
    engine = db.make_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        connection.commit()
        assert not _queue_taken(path)
        connection.exec_driver_sql("INSERT INTO t VALUES (1)")
        assert _queue_taken(path)
        connection.commit()
        assert not _queue_taken(path)
        connection.exec_driver_sql("INSERT INTO t VALUES (2)")
        connection.rollback()
        assert not _queue_taken(path)
        with pytest.raises(sa.exc.OperationalError):
            connection.exec_driver_sql("INSERT INTO missing VALUES (3)")
        connection.rollback()
        assert not _queue_taken(path)
        connection.exec_driver_sql("SELECT x FROM t")
    assert not _queue_taken(path)  # closing a connection inside a transaction rolls back and lets go
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT x FROM t").scalars().all() == [1]
    engine.dispose()


def test_a_writer_waits_for_its_turn_then_goes_ahead(tmp_path):
    """While one connection holds the queue, another's turn waits (here up to its timeout, 20 ms,
    then it says so); once the first lets go, the next try gets it."""
    path = str(tmp_path / "turns.sqlite")
    first, second = db.WriterQueue(path), db.WriterQueue(path, timeout_s=0.02)
    try:
        assert first.acquire()
        assert not second.acquire()
        first.release()
        assert second.acquire()
        assert first.held is False and second.held is True
    finally:
        first.close()
        second.close()


def test_threads_of_one_process_wait_for_their_turn_without_polling(tmp_path, monkeypatch):
    """A thread whose process already has a writer blocks on the process's turn, and tries the
    file lock once, when its turn comes (gunicorn's threads do not all poll the file)."""
    import threading

    path = str(tmp_path / "threads.sqlite")
    first, second = db.WriterQueue(path), db.WriterQueue(path)
    tries = []
    real_try = db.WriterQueue._try
    monkeypatch.setattr(db.WriterQueue, "_try", lambda self: tries.append(self) or real_try(self))
    waiting = threading.Event()

    class Turn:  # the process's turn, telling when the second writer starts waiting on it
        def __init__(self, lock):
            self.lock = lock

        def acquire(self, **kwargs):
            waiting.set()
            return self.lock.acquire(**kwargs)

        def release(self):
            self.lock.release()

    second.turn = Turn(second.turn)
    try:
        assert first.acquire()
        waiter = threading.Thread(target=second.acquire)
        waiter.start()
        assert waiting.wait(5)
        assert tries == [first]  # the second waits on the turn, not on the file
        first.release()
        waiter.join(5)
        assert second.held
        assert tries == [first, second]  # one try of the file lock, when its turn came
    finally:
        first.close()
        second.close()


def test_a_writer_waits_for_another_process_on_the_file_lock(tmp_path):
    """The file lock is what other processes hold: here another open file description of the
    lock file (as another process would have) holds it, so this process's writer waits for it."""
    import fcntl
    import os

    path = str(tmp_path / "procs.sqlite")
    other = os.open(path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(other, fcntl.LOCK_EX)
    queue = db.WriterQueue(path, timeout_s=0.02)
    try:
        assert not queue.acquire()  # timed out on the file lock, and gave its process's turn back
        assert queue.turn.acquire(blocking=False)
        queue.turn.release()
        fcntl.flock(other, fcntl.LOCK_UN)
        assert queue.acquire() and queue.held
    finally:
        queue.close()
        os.close(other)


def test_an_in_memory_database_has_no_writer_queue():
    engine = db.make_engine("sqlite://")
    with engine.connect() as connection:
        assert connection.connection.dbapi_connection.writer_queue is None
        assert connection.exec_driver_sql("SELECT 1").scalar() == 1
    engine.dispose()


def test_a_foreign_key_is_enforced(app, clock):
    from ivr_cbt.models import CheckIn

    with app.app_context():
        session = db.session()
        with pytest.raises(sa.exc.IntegrityError):
            session.execute(
                sa.insert(CheckIn.__table__).values(
                    patient_id=999, week=0, status="in-progress", started_at=clock.now(), updated_at=clock.now()
                )
            )


def test_times_are_stored_in_utc_and_come_back_aware(app, clock):
    from zoneinfo import ZoneInfo

    local = datetime(2026, 3, 8, 1, 30, tzinfo=ZoneInfo("America/New_York"))
    with app.app_context():
        session = db.session()
        session.add(AuditEvent(at=local, actor="test", action="x"))
        session.commit()
        stored = session.scalar(sa.select(AuditEvent.at))
    assert stored == local and stored.utcoffset().total_seconds() == 0


def test_a_naive_time_is_refused(app):
    with app.app_context():
        session = db.session()
        session.add(AuditEvent(at=datetime(2026, 1, 1), actor="test", action="x"))
        with pytest.raises(sa.exc.StatementError, match="naive datetime"):
            session.flush()


def test_the_migration_downgrades_and_upgrades_cleanly(tmp_path):
    from alembic import command
    from alembic.config import Config

    url = f"sqlite:///{tmp_path / 'cycle.sqlite'}"
    db.upgrade_database(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(db.MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["configure_logger"] = False
    command.downgrade(cfg, "base")
    engine = sa.create_engine(url)
    assert set(sa.inspect(engine).get_table_names()) == {"alembic_version"}
    engine.dispose()
    db.upgrade_database(url)
    engine = sa.create_engine(url)
    assert {"patients", "calls", "checkins", "answers", "alerts", "audit_events"} <= set(
        sa.inspect(engine).get_table_names()
    )
    engine.dispose()


def test_without_a_writer_queue_file_sqlite_still_works(tmp_path, monkeypatch):
    """Where the lock file cannot be made (a read-only directory), SQLite's own busy handler alone queues writers."""

    def refuse(path, timeout_s=db.BUSY_TIMEOUT_S):
        raise PermissionError(path)

    monkeypatch.setattr(db, "WriterQueue", refuse)
    engine = db.make_engine(f"sqlite:///{tmp_path / 'plain.sqlite'}")
    with engine.connect() as connection:
        assert connection.connection.dbapi_connection.writer_queue is None
        connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        connection.exec_driver_sql("INSERT INTO t VALUES (1)")
        connection.commit()
        assert connection.exec_driver_sql("SELECT count(*) FROM t").scalar() == 1
    engine.dispose()
