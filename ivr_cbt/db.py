"""Engine, sessions and the few database habits every module shares.

* SQLite (the embedded default) runs with foreign keys on, WAL, a busy timeout, and
  ``BEGIN IMMEDIATE`` transactions, so two writers queue instead of failing with a stale
  snapshot; writers take turns on a file lock beside the database (``WriterQueue``).
* PostgreSQL (production) uses psycopg 3; writes nobody reads back (``Prepared.send``) wait to
  go with the next statement or the commit, in one round trip (``DeferringPsycopgDialect``).
* Datetimes are stored in UTC and come back timezone-aware on both.
* Schema changes go through Alembic (``migrations/``); ``create_app`` never creates tables.
"""

from __future__ import annotations

import collections
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import sqlalchemy as sa
from flask import Flask, current_app, g
from sqlalchemy import event, orm
from sqlalchemy.dialects import postgresql, registry, sqlite
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

from ivr_cbt.config import PROJECT_ROOT

try:
    import fcntl
except ImportError:  # not on Windows: SQLite's own busy handler alone
    fcntl = None

MIGRATIONS_DIR = PROJECT_ROOT / "migrations"


class UTCDateTime(sa.types.TypeDecorator):
    """Store aware datetimes as UTC; always return aware UTC datetimes."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


BUSY_TIMEOUT_S = 10.0


class WriterQueue:
    """Writers of one SQLite file take turns on an OS file lock (``flock``) beside it.

    SQLite's own busy handler, when the write lock is taken, sleeps 1, 2, 5, 10 ... 100 ms
    between tries: under gunicorn's threads, or the cohort simulator's worker processes, a
    request that finds the lock held waited milliseconds after it was free (measured: a quarter
    of all transactions, 4.5 ms each). Here a writer that finds the queue busy tries again
    every 50 microseconds at first, at most every 0.5 ms, so it starts as soon as the one before it
    commits. (filelock, the well-known library, costs 234 us per acquire and release here, as
    much as a whole webhook turn's SQL; ``flock`` costs 1.3 us.)

    After ``timeout_s`` without the queue a writer goes ahead to ``BEGIN IMMEDIATE`` anyway, and
    SQLite's busy timeout has the last word, as for any writer that does not use the queue
    (the sqlite3 shell, an older process). The kernel drops the lock of a process that dies.
    """

    FIRST_WAIT_S, LONGEST_WAIT_S = 0.00005, 0.0005

    def __init__(self, path: str, timeout_s: float = BUSY_TIMEOUT_S):
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self.timeout_s = timeout_s
        self.held = False
        self.turn = _process_turn(path)

    def _try(self) -> bool:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        self.held = True
        return True

    def acquire(self) -> bool:
        """Wait for this process's turn (threads block, without polling), then for the file's."""
        deadline = time.monotonic() + self.timeout_s
        if not self.turn.acquire(timeout=self.timeout_s):
            return False
        if self._try():
            return True
        wait = self.FIRST_WAIT_S
        while time.monotonic() < deadline:
            time.sleep(wait)
            if self._try():
                return True
            wait = min(wait * 2, self.LONGEST_WAIT_S)
        self.turn.release()
        return False

    def release(self) -> None:
        if self.held:
            self.held = False
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            self.turn.release()

    def close(self) -> None:
        self.release()
        os.close(self.fd)


_turns: dict[str, threading.Lock] = {}
_turns_lock = threading.Lock()


def _process_turn(path: str) -> threading.Lock:
    """The lock this process's writers of one file take before its file lock: threads of one
    process (gunicorn's) wait on it without polling, and only one of them polls the file lock."""
    with _turns_lock:
        return _turns.setdefault(os.path.realpath(path), threading.Lock())


def _forget_turns() -> None:  # a forked child starts with no writer of its own
    global _turns, _turns_lock
    _turns, _turns_lock = {}, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_turns)


class QueuedSQLiteConnection(sqlite3.Connection):
    """A pysqlite connection that carries its database file's writer queue (None in memory)."""

    def __init__(self, database, *args, **kwargs):
        super().__init__(database, *args, **kwargs)
        path = os.fspath(database) if isinstance(database, str | os.PathLike) else ""
        self.writer_queue = None
        if fcntl is not None and path not in ("", ":memory:") and not kwargs.get("uri"):
            with contextlib.suppress(OSError):  # e.g. a read-only directory: SQLite's busy handler alone
                self.writer_queue = WriterQueue(path + "-writer")


class ImmediateSQLiteDialect(SQLiteDialect_pysqlite):
    """pysqlite whose transactions start with ``BEGIN IMMEDIATE`` (pysqlite's own BEGIN is deferred),
    after a turn in the file's writer queue (see WriterQueue).

    Overriding ``do_begin`` rather than listening for the "begin" event keeps the engine free
    of connection events, which SQLAlchemy would otherwise dispatch around every statement.
    """

    supports_statement_cache = True

    def connect(self, *cargs, **cparams):
        cparams.setdefault("factory", QueuedSQLiteConnection)
        return super().connect(*cargs, **cparams)

    def do_begin(self, dbapi_connection):
        queue = getattr(dbapi_connection, "writer_queue", None)
        if queue is not None:
            queue.acquire()
        try:
            dbapi_connection.execute("BEGIN IMMEDIATE")
        except BaseException:
            if queue is not None:
                queue.release()
            raise

    def do_commit(self, dbapi_connection):
        try:
            dbapi_connection.commit()
        finally:
            _release(dbapi_connection)

    def do_rollback(self, dbapi_connection):
        try:
            dbapi_connection.rollback()
        finally:
            _release(dbapi_connection)

    def do_close(self, dbapi_connection):
        queue = getattr(dbapi_connection, "writer_queue", None)
        try:
            dbapi_connection.close()
        finally:
            if queue is not None:
                queue.close()


def _release(dbapi_connection) -> None:
    queue = getattr(dbapi_connection, "writer_queue", None)
    if queue is not None:
        queue.release()


registry.register("sqlite.ivr_immediate", __name__, "ImmediateSQLiteDialect")


class DeferringPsycopgDialect(PGDialect_psycopg):
    """psycopg 3, where statements whose results nobody waits for wait on the connection and go
    to the server with whatever comes next, in one round trip (psycopg's pipeline mode): the
    BEGIN goes with the transaction's first statement, and writes nobody reads back
    (``Prepared.send``: an answer, the check-in's progress, an audit row, the call's new state)
    go with the next statement or the COMMIT. A webhook turn is then two round trips: its
    first statement, and its writes with the commit (it was six).

    So psycopg itself runs in autocommit mode (it would send each BEGIN alone and wait for
    it) and the dialect begins transactions: ``BEGIN`` with the isolation level and read-only
    setting SQLAlchemy asked for, exactly where SQLAlchemy begins one.

    Nothing can overtake what waits: any other statement, on this path or SQLAlchemy's, sends
    it first; a rollback drops it (it was never sent); an error in it is raised by the
    statement or commit that sent it, and the transaction is then rolled back as usual.
    """

    supports_statement_cache = True

    def connect(self, *cargs, **cparams):
        connection = super().connect(*cargs, **cparams)
        connection.autocommit = True  # psycopg never begins; do_begin does
        connection.ivr_autocommit = False  # what SQLAlchemy asked for
        connection.ivr_deferred = []  # (sql, values) sent with the next statement or the commit; (BEGIN, None)
        return connection

    def _do_isolation_level(self, connection, autocommit, isolation_level):
        connection.ivr_autocommit = autocommit
        connection.isolation_level = isolation_level  # psycopg keeps it; _begin_sql reads it

    def _do_autocommit(self, connection, value):
        connection.ivr_autocommit = value

    def detect_autocommit_setting(self, dbapi_connection):
        return bool(_raw(dbapi_connection).ivr_autocommit)

    def do_begin(self, dbapi_connection):
        raw = _raw(dbapi_connection)
        if not raw.ivr_autocommit:
            raw.ivr_deferred.append((_begin_sql(raw), None))

    def do_execute(self, cursor, statement, parameters, context=None):
        _execute_after_deferred(cursor, statement, parameters)

    def do_execute_no_params(self, cursor, statement, context=None):
        _execute_after_deferred(cursor, statement, None)

    def do_executemany(self, cursor, statement, parameters, context=None):
        _send_deferred(cursor.connection)
        super().do_executemany(cursor, statement, parameters, context)

    def do_commit(self, dbapi_connection):
        raw = _raw(dbapi_connection)
        if len(raw.ivr_deferred) == 1 and raw.ivr_deferred[0][1] is None:
            raw.ivr_deferred.clear()  # only the BEGIN: a transaction that ran nothing
            return
        try:
            _send_deferred(raw, commit=True)
        except Exception:
            # The server's transaction failed and is still open: close it (SQLAlchemy's own
            # rollback after a failed commit has nothing left to do).
            with contextlib.suppress(Exception):
                raw.rollback()
            raise
        raw.commit()  # psycopg sends nothing when the COMMIT went with the writes

    def do_rollback(self, dbapi_connection):
        raw = _raw(dbapi_connection)
        raw.ivr_deferred.clear()  # never sent; if the BEGIN was among them, the server is idle
        raw.rollback()  # psycopg sends nothing when the server has no transaction open


def _raw(dbapi_connection):
    """The psycopg connection behind SQLAlchemy's pool proxy (or itself)."""
    return getattr(dbapi_connection, "dbapi_connection", dbapi_connection)


def _begin_sql(raw) -> str:
    from psycopg import IsolationLevel

    parts = ["BEGIN"]
    if raw.isolation_level is not None:
        parts.append("ISOLATION LEVEL " + IsolationLevel(raw.isolation_level).name.replace("_", " "))
    if raw.read_only is not None:
        parts.append("READ ONLY" if raw.read_only else "READ WRITE")
    if raw.deferrable is not None:
        parts.append("DEFERRABLE" if raw.deferrable else "NOT DEFERRABLE")
    return " ".join(parts)


def _execute_after_deferred(cursor, statement, parameters) -> None:
    """Run a statement, sending what waits on its connection with it, in one round trip."""
    raw = cursor.connection
    if not raw.ivr_deferred:
        cursor.execute(statement, parameters)
        return
    if getattr(cursor, "name", None):  # a server-side cursor cannot run in a pipeline
        _send_deferred(raw)
        cursor.execute(statement, parameters)
        return
    with raw.pipeline():
        _send_deferred(raw, cursor=cursor)
        cursor.execute(statement, parameters)


def _send_deferred(raw, *, commit: bool = False, cursor=None) -> None:
    """Send the connection's waiting statements (and a COMMIT) in one pipeline: one round trip.

    Given a ``cursor``, queue them in the caller's pipeline (the caller's statement follows)."""
    deferred = raw.ivr_deferred
    if not deferred and not commit:
        return
    if cursor is not None:
        _queue(cursor, deferred)
        return
    cursor = raw.cursor()
    try:
        with raw.pipeline():
            _queue(cursor, deferred)
            if commit:
                cursor.execute("COMMIT", prepare=False)
    finally:
        deferred.clear()  # sent, or failed with the transaction, which is then rolled back
        cursor.close()


def _queue(cursor, deferred: list) -> None:
    """Queue the waiting statements in the cursor's pipeline (the BEGIN is never prepared)."""
    for sql, values in deferred:
        cursor.execute(sql, values, prepare=False if values is None else None)
    deferred.clear()


registry.register("postgresql.ivr_psycopg", __name__, "DeferringPsycopgDialect")


def make_engine(url: str, **kwargs) -> sa.Engine:
    """Create an engine with this project's per-dialect settings."""
    url_obj = sa.engine.make_url(url)
    if url_obj.get_backend_name() == "sqlite":
        database = url_obj.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        if url_obj.get_driver_name() == "pysqlite":
            url_obj = url_obj.set(drivername="sqlite+ivr_immediate")
        engine = sa.create_engine(url_obj, **kwargs)
        _configure_sqlite(engine)
        return engine
    # No pre-ping: it costs a round trip on every webhook. Connections are recycled instead,
    # and on a disconnect SQLAlchemy invalidates the whole pool, so after a database restart
    # one request fails (Twilio then uses the Fallback URL) and the next ones reconnect.
    kwargs.setdefault("pool_recycle", 1800)
    if url_obj.get_backend_name() == "postgresql" and url_obj.get_driver_name() == "psycopg":
        url_obj = url_obj.set(drivername="postgresql+ivr_psycopg")
    return sa.create_engine(url_obj, **kwargs)


def _configure_sqlite(engine: sa.Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let the dialect's do_begin own transactions (pysqlite's own BEGIN is deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        cursor.close()


def connection_of(target: sa.Connection | orm.Session) -> sa.Connection:
    """The connection to run Core statements on, inside the session's transaction if given one."""
    return target.connection() if isinstance(target, orm.Session) else target


def is_sqlite(bind: sa.Engine | sa.Connection | orm.Session) -> bool:
    if isinstance(bind, orm.Session):
        bind = bind.get_bind()
    return bind.dialect.name == "sqlite"


@cache
def _insert_ignoring(dialect_name: str, table: sa.Table) -> Prepared:
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    # RETURNING tells inserted from ignored on both databases (PostgreSQL's rowcount is -1 here).
    return Prepared(dialect.insert(table).on_conflict_do_nothing().returning(*table.primary_key.columns))


def insert_ignoring_conflicts(target: sa.Connection | orm.Session, table: sa.Table, values: dict) -> bool:
    """Insert a row unless a unique key already holds it; return True if it was inserted."""
    return insert_returning_key(target, table, values) is not None


@cache
def _insert_ignoring_unseen(dialect_name: str, table: sa.Table) -> Prepared:
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    return Prepared(dialect.insert(table).on_conflict_do_nothing())


def send_insert_ignoring_conflicts(target: sa.Connection | orm.Session, table: sa.Table, values: dict) -> None:
    """Insert a row unless a unique key already holds it, without asking which (``Prepared.send``:
    on PostgreSQL it goes to the server with the next statement or the commit)."""
    conn = connection_of(target)
    _insert_ignoring_unseen(conn.dialect.name, table).send(conn, values)


def insert_returning_key(target: sa.Connection | orm.Session, table: sa.Table, values: dict):
    """Insert a row unless a unique key already holds it; return its primary key if inserted, else None."""
    conn = connection_of(target)
    return _insert_ignoring(conn.dialect.name, table).scalar(conn, values)


class Prepared:
    """A prebuilt Core statement that runs straight on the connection's DBAPI cursor.

    The webhook turns run a few such statements per request, and SQLAlchemy's execution
    path (execution context, event dispatch, result objects) cost five times what SQLite
    itself spends on them (measured: 17 us against 3 us for the step's SELECT). This keeps
    what matters of that path: the statement is compiled by SQLAlchemy, once per dialect and
    parameter set; values go through the columns' own bind processors (UTC datetimes, JSON,
    enums) and Python-side insert defaults; rows come back through the result processors;
    the statement joins the connection's transaction (beginning it as ``execute`` would);
    DBAPI errors are raised as SQLAlchemy's, and a lost connection invalidates the pool. What it
    drops: statement events and echo logging, which the webhook path does not use.

    Rows are plain named tuples of the statement's columns (``row.step``, ``row[0]``).
    It reads the compiled statement's parameter order, names and insert defaults from
    SQLAlchemy's compiler (``positiontup``, ``bind_names``, ``insert_prefetch``): the version is
    pinned in constraints.txt, and tests/test_prepared.py checks the results against
    SQLAlchemy's own on both databases.
    """

    def __init__(self, statement: sa.Executable):
        self.statement = statement
        self._plans: dict[tuple, _Plan] = {}

    def _plan(self, conn: sa.Connection, params: dict) -> _Plan:
        dialect = conn.dialect
        key = (dialect.name, dialect.driver, *params)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = _Plan(self.statement, dialect, list(params))
        return plan

    def rows(self, conn: sa.Connection, params: dict) -> list:
        return self._plan(conn, params).run(conn, params, fetch=True)

    def first(self, conn: sa.Connection, params: dict):
        """The first row, or None."""
        rows = self.rows(conn, params)
        return rows[0] if rows else None

    def scalar(self, conn: sa.Connection, params: dict):
        """The first column of the first row, or None."""
        rows = self.rows(conn, params)
        return rows[0][0] if rows else None

    def rowcount(self, conn: sa.Connection, params: dict) -> int:
        """Run a statement that returns no rows; the number of rows it changed."""
        return self._plan(conn, params).run(conn, params, fetch=False)

    def send(self, conn: sa.Connection, params: dict) -> None:
        """Run a statement whose result nobody reads. On PostgreSQL it waits to go to the server
        with the next statement or the commit (one round trip for all: see
        DeferringPsycopgDialect), so an error in it is raised there; elsewhere it runs now."""
        self._plan(conn, params).run(conn, params, fetch=False, defer=True)


class _Plan:
    """One compiled form of a Prepared statement (a dialect, a set of parameter names)."""

    def __init__(self, statement: sa.Executable, dialect: sa.Dialect, keys: list[str]):
        compiled = statement.compile(dialect=dialect, column_keys=keys)
        if "POSTCOMPILE" in compiled.string:
            raise ValueError("Prepared statements cannot expand IN lists (see is_one_of)")
        if compiled.update_prefetch:
            raise ValueError("Prepared statements do not run onupdate defaults")
        if compiled.escaped_bind_names:
            raise ValueError("Prepared statements take plain parameter names (letters, digits, _)")
        self.sql = compiled.string
        given = set(keys)
        constants = compiled.construct_params(_check=False)
        # Python-side insert defaults of columns not given (SQLAlchemy's "prefetch").
        self.defaults = []
        for column in compiled.insert_prefetch:
            default = column.default
            if default is None or not (default.is_scalar or default.is_callable):
                raise ValueError(f"Prepared statements cannot compute the default of {column}")
            self.defaults.append((column.key, default.is_callable, default.arg))
        processors = {}
        for bind, name in compiled.bind_names.items():
            if bind.required and name not in given:
                raise sa.exc.ArgumentError(f"a value is required for bind parameter {name!r}")
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                processors[name] = processor
        order = compiled.positiontup if dialect.positional else list(constants)
        # Each parameter: (its name, its constant when the caller does not give it, its processor).
        self.binds = [(name, constants.get(name), processors.get(name)) for name in order]
        self.positional, self.names = dialect.positional, list(order)
        columns = list(getattr(statement, "exported_columns", ()))
        self.row_type = collections.namedtuple("Row", [c.key for c in columns]) if columns else None
        self.result_processors = [c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns]
        self.any_result_processor = any(self.result_processors)

    def _values(self, params: dict):
        if self.defaults:
            params = dict(params)
            for key, is_callable, arg in self.defaults:
                params[key] = arg(None) if is_callable else arg
        values = []
        for name, constant, processor in self.binds:
            value = params.get(name, constant)
            values.append(processor(value) if processor is not None else value)
        return values if self.positional else dict(zip(self.names, values, strict=True))

    def run(self, conn: sa.Connection, params: dict, *, fetch: bool, defer: bool = False):
        if not conn.in_transaction():
            conn.begin()
        values = self._values(params)
        dbapi_connection = conn.connection.dbapi_connection
        deferred = getattr(dbapi_connection, "ivr_deferred", None)  # None: not DeferringPsycopgDialect
        if defer and deferred is not None:
            deferred.append((self.sql, values))
            return None
        cursor = dbapi_connection.cursor()
        try:
            if deferred:  # one round trip for what waits (the BEGIN, writes) and this statement
                _execute_after_deferred(cursor, self.sql, values)
            else:
                cursor.execute(self.sql, values)
            if not fetch:
                return cursor.rowcount
            raw = cursor.fetchall()
        except conn.dialect.loaded_dbapi.Error as error:
            dialect = conn.dialect
            disconnected = dialect.is_disconnect(error, dbapi_connection, cursor)
            if disconnected:
                # As SQLAlchemy does: this connection is dropped, and so is the rest of the pool
                # (connections opened before a database restart are dead too), so the next
                # requests reconnect instead of each failing once.
                conn.invalidate(error)
                conn.engine.dispose()
            raise sa.exc.DBAPIError.instance(
                self.sql,
                values,
                error,
                dialect.loaded_dbapi.Error,
                dialect=dialect,
                connection_invalidated=disconnected,
            ) from error
        finally:
            cursor.close()
        if self.row_type is None:
            return raw
        make = self.row_type._make
        if not self.any_result_processor:
            return [make(row) for row in raw]
        processors = self.result_processors
        return [make([p(v) if p is not None else v for p, v in zip(processors, row, strict=True)]) for row in raw]


def is_one_of(column: sa.ColumnElement, values) -> sa.ColumnElement[bool]:
    """``column`` equals one of a few constant ``values``, as ``a = x OR a = y``.

    Unlike ``IN (x, y)``, whose list SQLAlchemy expands into the SQL afresh at each execution,
    the statement compiles once; both databases use an index on ``column`` for it.
    """
    return sa.or_(*(column == value for value in values))


def upgrade_database(url: str, revision: str = "head") -> None:
    """Create or upgrade the schema with Alembic."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)
    finally:
        engine.dispose()


# --- Flask wiring -----------------------------------------------------------------------


def init_app(app: Flask) -> None:
    """Give the app an engine, and a session or connection per application context."""
    engine = make_engine(app.config["DATABASE_URL"])
    app.extensions["db_engine"] = engine
    app.extensions["db_sessionmaker"] = orm.sessionmaker(engine, expire_on_commit=False)
    app.teardown_appcontext(_close)


def session() -> orm.Session:
    """Return the ORM session of the current application context (pages, commands)."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["db_sessionmaker"]()
    return g.db_session


def connection() -> sa.Connection:
    """Return a plain connection for the current application context (the webhook hot path).

    Webhooks run a handful of prebuilt Core statements per request; an ORM session would
    cost more than the statements themselves.
    """
    if "db_connection" not in g:
        g.db_connection = current_app.extensions["db_engine"].connect()
    return g.db_connection


def _close(_exc: BaseException | None) -> None:
    db_session = g.pop("db_session", None)
    if db_session is not None:
        db_session.close()
    db_connection = g.pop("db_connection", None)
    if db_connection is not None:
        db_connection.close()  # rolls back anything left uncommitted


@contextmanager
def session_scope(app: Flask) -> Iterator[orm.Session]:
    """Yield a fresh session outside a request (CLI, jobs); commit on success."""
    db_session = app.extensions["db_sessionmaker"]()
    try:
        yield db_session
        db_session.commit()
    except BaseException:
        db_session.rollback()
        raise
    finally:
        db_session.close()


def safe_url(url: str) -> str:
    """``url`` as it may be printed: any password masked."""
    return sa.engine.make_url(url).render_as_string(hide_password=True)
