"""A throw-away PostgreSQL database for the benchmarks: created, handed over, dropped."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy.engine import make_url


@contextmanager
def throwaway_database(admin: str, prefix: str) -> Iterator[str | None]:
    """Create a database named `prefix_<random>` through the libpq URL `admin`, yield its
    URL, drop it (even when connections are left) at the end. Yields None, after saying
    so, when the server does not answer within 3 s."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        print(f"PostgreSQL skipped: {exc}", flush=True)
        yield None
        return
    try:
        yield make_url(admin).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
