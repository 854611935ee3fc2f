"""db.Prepared: prebuilt statements run on the DBAPI cursor give what SQLAlchemy's own
execution gives (types both ways, defaults, transactions, errors), on every backend."""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from ivr_cbt import db

from .conftest import PG_URL


class Colour(enum.StrEnum):
    RED = "red"
    BLUE = "blue"


metadata = sa.MetaData()
things = sa.Table(
    "prepared_things",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(20), unique=True, nullable=False),
    sa.Column("at", db.UTCDateTime, nullable=False),
    sa.Column("doc", sa.JSON),
    sa.Column("colour", sa.Enum(Colour, native_enum=False, length=8)),
    sa.Column("flag", sa.Boolean, default=False, nullable=False),
    sa.Column("detail", sa.JSON, default=dict, nullable=False),
    sa.Column("step", sa.Integer, nullable=False, server_default="0"),
)
INSERT = db.Prepared(sa.insert(things).returning(things.c.id))
SELECT = db.Prepared(
    sa.select(things.c.id, things.c.at, things.c.doc, things.c.colour, things.c.flag, things.c.detail).where(
        things.c.name == sa.bindparam("b_name")
    )
)
TAKE = db.Prepared(
    sa.update(things).where(things.c.id == sa.bindparam("b_id"), things.c.step == sa.bindparam("b_step"))
)


@pytest.fixture
def engine(database_url):
    engine = db.make_engine(database_url)
    metadata.create_all(engine)
    yield engine
    metadata.drop_all(engine)
    engine.dispose()


def sa_row(conn, name):
    return conn.execute(sa.select(things).where(things.c.name == name)).one()


def test_values_go_in_and_come_out_as_sqlalchemy_would(engine):
    at = datetime(2026, 3, 8, 6, 30, 15, 250, tzinfo=timezone(timedelta(hours=-5)))
    with engine.connect() as conn:
        new_id = INSERT.scalar(
            conn, {"name": "a", "at": at, "doc": {"node": "pain", "tries": [1, 2]}, "colour": Colour.RED}
        )
        conn.commit()
        stored = sa_row(conn, "a")
        assert (stored.id, stored.at, stored.doc, stored.colour) == (
            new_id,
            at,
            {"node": "pain", "tries": [1, 2]},
            Colour.RED,
        )
        assert stored.at.tzinfo == UTC
        # Python-side defaults of columns not given, as Core's insert applies them; the server default.
        assert (stored.flag, stored.detail, stored.step) == (False, {}, 0)
        # Read back through Prepared: the same values and types as SQLAlchemy's own row.
        row = SELECT.first(conn, {"b_name": "a"})
        expected = conn.execute(SELECT.statement, {"b_name": "a"}).one()
        assert tuple(row) == tuple(expected)
        assert type(row.colour) is type(expected.colour) and type(row.at) is type(expected.at)
        assert row.id == new_id and row.doc["node"] == "pain"
        assert SELECT.first(conn, {"b_name": "nobody"}) is None
        assert SELECT.scalar(conn, {"b_name": "a"}) == new_id


def test_it_joins_the_connections_transaction(engine):
    at = datetime(2026, 3, 8, 12, tzinfo=UTC)
    with engine.connect() as conn:
        INSERT.scalar(conn, {"name": "kept", "at": at})
        assert conn.in_transaction()  # begun as conn.execute would (BEGIN IMMEDIATE on SQLite)
        conn.commit()
        INSERT.scalar(conn, {"name": "dropped", "at": at})
        conn.rollback()
        names = set(conn.execute(sa.select(things.c.name)).scalars())
    assert names == {"kept"}


def test_an_update_reports_the_rows_it_changed(engine):
    with engine.connect() as conn:
        thing = INSERT.scalar(conn, {"name": "t", "at": datetime(2026, 1, 1, tzinfo=UTC)})
        # The SET columns come from the parameters, as with Core: each set of names compiles once.
        assert TAKE.rowcount(conn, {"b_id": thing, "b_step": 0, "step": 1, "doc": {"n": 1}}) == 1
        assert TAKE.rowcount(conn, {"b_id": thing, "b_step": 0, "step": 2, "doc": {"n": 2}}) == 0  # step taken
        assert TAKE.rowcount(conn, {"b_id": thing, "b_step": 1, "step": 2}) == 1
        conn.commit()
        stored = sa_row(conn, "t")
    assert (stored.step, stored.doc) == (2, {"n": 1})


def test_a_database_error_is_sqlalchemys_and_the_connection_stays_usable(engine):
    at = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.connect() as conn:
        INSERT.scalar(conn, {"name": "same", "at": at})
        conn.commit()
        with pytest.raises(sa.exc.IntegrityError):
            INSERT.scalar(conn, {"name": "same", "at": at})
        conn.rollback()
        assert SELECT.scalar(conn, {"b_name": "same"}) is not None


def test_statements_it_cannot_run_faithfully_are_refused(engine):
    with engine.connect() as conn:
        with pytest.raises(ValueError, match="IN lists"):
            db.Prepared(sa.select(things.c.id).where(things.c.name.in_(["a", "b"]))).rows(conn, {})
        with pytest.raises(ValueError, match="plain parameter names"):
            db.Prepared(sa.select(things.c.id).where(things.c.name == sa.bindparam("a.b"))).rows(conn, {"a.b": 1})
        stamped = sa.Table(
            "stamped",
            sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("at", sa.Integer, onupdate=1),
        )
        with pytest.raises(ValueError, match="onupdate"):
            db.Prepared(sa.update(stamped).where(stamped.c.id == sa.bindparam("b_id"))).rowcount(conn, {"b_id": 1})
        with pytest.raises(sa.exc.ArgumentError, match="b_name"):
            SELECT.first(conn, {})
        conn.rollback()


@pytest.mark.skipif(not PG_URL, reason="needs a PostgreSQL server to drop connections (TEST_DATABASE_URL)")
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_lost_connection_is_reported_and_the_pool_is_renewed(engine, database_url):
    """After a database restart (here: the server drops both pooled connections), the first
    statement raises SQLAlchemy's disconnect error and the rest of the pool is dropped with it,
    so the next request gets a live connection instead of the other dead one."""
    first, second = engine.connect(), engine.connect()
    backends = [c.exec_driver_sql("select pg_backend_pid()").scalar() for c in (first, second)]
    first.close(), second.close()  # both idle in the pool
    admin = sa.create_engine(database_url)
    with admin.begin() as conn:
        for backend in backends:
            conn.exec_driver_sql(f"select pg_terminate_backend({backend})")
    admin.dispose()
    with engine.connect() as conn:
        with pytest.raises(sa.exc.OperationalError) as raised:
            SELECT.first(conn, {"b_name": "anyone"})
        assert raised.value.connection_invalidated
    with engine.connect() as conn:
        assert SELECT.first(conn, {"b_name": "anyone"}) is None
        assert conn.exec_driver_sql("select pg_backend_pid()").scalar() not in backends


PLAIN_INSERT = db.Prepared(sa.insert(things))


def test_a_sent_write_is_seen_by_the_next_statement_and_kept_or_dropped_with_its_transaction(engine):
    """``send`` (on PostgreSQL, waiting for the next statement or the commit) is read back by the
    next statement of either path, committed with the commit, dropped by a rollback."""
    at = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.connect() as conn:
        PLAIN_INSERT.send(conn, {"name": "seen", "at": at})
        assert SELECT.scalar(conn, {"b_name": "seen"}) is not None  # Prepared's path
        PLAIN_INSERT.send(conn, {"name": "also", "at": at})
        assert sa_row(conn, "also").name == "also"  # SQLAlchemy's path
        PLAIN_INSERT.send(conn, {"name": "committed", "at": at})
        conn.commit()
        PLAIN_INSERT.send(conn, {"name": "dropped", "at": at})
        conn.rollback()
        names = set(conn.execute(sa.select(things.c.name)).scalars())
    assert names == {"seen", "also", "committed"}


@pytest.mark.parametrize("raised_by", ["commit", "next statement"])
def test_an_error_in_a_sent_write_is_raised_as_itself_and_nothing_is_kept(engine, raised_by):
    """A sent write that fails raises its own error (here the unique violation) from whatever sent
    it, the next statement or the commit, and the transaction keeps nothing; the connection is
    usable again after the rollback, also once psycopg prepares the statement (after 5 runs)."""
    at = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.connect() as conn:
        PLAIN_INSERT.send(conn, {"name": "same", "at": at})
        conn.commit()
        for attempt in range(6):
            PLAIN_INSERT.send(conn, {"name": f"other {attempt}", "at": at})
            with pytest.raises(sa.exc.IntegrityError):
                PLAIN_INSERT.send(conn, {"name": "same", "at": at})
                if raised_by == "commit":
                    conn.commit()
                else:
                    SELECT.scalar(conn, {"b_name": "same"})
            conn.rollback()
        names = set(conn.execute(sa.select(things.c.name)).scalars())
    assert names == {"same"}


def test_the_isolation_level_asked_for_is_the_transactions(engine):
    with engine.connect() as conn:
        if conn.dialect.name != "postgresql":
            pytest.skip("SQLite has one isolation level")
        conn.execution_options(isolation_level="REPEATABLE READ")
        assert conn.exec_driver_sql("SHOW transaction_isolation").scalar() == "repeatable read"
        conn.rollback()
