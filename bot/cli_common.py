"""Pieces shared by the `prokus` command groups."""

from __future__ import annotations

import contextlib
import getpass
import os
from collections.abc import Iterator

import click
from sqlalchemy.orm import Session, sessionmaker

from bot.settings import Settings


def status(message: str) -> None:
    """Progress and status lines go to stderr, so stdout stays clean for data."""
    click.echo(message, err=True)


class DatabaseGroup(click.Group):
    """Turn database connection errors into one clear line instead of a traceback."""

    def invoke(self, ctx: click.Context):
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import OperationalError, ProgrammingError

        try:
            return super().invoke(ctx)
        except (OperationalError, ProgrammingError) as exc:
            url = make_url(ctx.find_root().obj.database_url).render_as_string(hide_password=True)
            raise click.ClickException(
                f"Cannot use the database {url}: {exc.orig} (run `prokus db upgrade`?)"
            ) from exc


@contextlib.contextmanager
def sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    """A session factory on DATABASE_URL, disposed of afterwards."""
    from db.engine import make_engine, make_sessionmaker

    engine = make_engine(settings.database_url)
    try:
        yield make_sessionmaker(engine)
    finally:
        engine.dispose()


def operator_name(value: str | None) -> str:
    """Who runs an operator command, for the audit log: --operator, PROKUS_OPERATOR or the
    login name."""
    name = value or os.environ.get("PROKUS_OPERATOR") or getpass.getuser()
    return f"operator:{name}"[:64]
