"""What the benchmarks share: the databases to measure on, each in a fresh, migrated schema of its own."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from ivr_cbt import db


def postgres_url() -> str | None:
    """The PostgreSQL server to measure on too (BENCH_DATABASE_URL, else TEST_DATABASE_URL), if any."""
    return os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")


def databases(name: str, schema: str) -> list[tuple[str, Callable[[int], str]]]:
    """(label, url for a run of size n): a SQLite file per size, and a PostgreSQL schema if configured."""
    tmp = Path(tempfile.mkdtemp(prefix=f"ivr-bench-{name}-"))
    found = [("SQLite", lambda n: f"sqlite:///{tmp / f'{name}-{n}.sqlite'}")]
    pg = postgres_url()
    if pg:
        url = sa.engine.make_url(pg).update_query_dict({"options": f"-csearch_path={schema}"})
        pg_url = url.render_as_string(hide_password=False)
        found.append(("PostgreSQL", lambda _n: pg_url))
    return found


def fresh(url: str, schema: str) -> None:
    """An empty, migrated database at ``url`` (on PostgreSQL: ``schema`` dropped and created again)."""
    if url.startswith("postgresql"):
        admin = sa.create_engine(url.split("?")[0])
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        admin.dispose()
    db.upgrade_database(url)


def drop(schema: str) -> None:
    """Remove the benchmark's PostgreSQL schema, if one was made."""
    pg = postgres_url()
    if pg:
        admin = sa.create_engine(pg)
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.dispose()
