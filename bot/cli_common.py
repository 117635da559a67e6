"""Pieces shared by the `prokus` command groups."""

from __future__ import annotations

import contextlib
import functools
import getpass
import os
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import click
from sqlalchemy.orm import Session, sessionmaker

from bot.settings import Settings, SettingsError, mask_url

F = TypeVar("F", bound=Callable[..., Any])


def status(message: str) -> None:
    """Progress and status lines go to stderr, so stdout stays clean for data."""
    click.echo(message, err=True)


def load_settings(ctx: click.Context) -> Settings:
    """The validated settings of this run, read on first use: after the arguments are parsed,
    so `--help` works even when a setting is wrong, which becomes one clear error."""
    root = ctx.find_root()
    if not isinstance(root.obj, Settings):
        try:
            settings = Settings.from_env()
        except SettingsError as error:
            raise click.ClickException(str(error)) from None
        from bot.logging import configure_logging
        from db import crypto

        configure_logging(settings.log_level, settings.log_json)
        crypto.use(None)  # this run's data key: read from its environment on first use
        root.obj = settings
    return root.obj


def pass_settings(command: F) -> F:
    """Like click.pass_obj, but hand the command the settings, loaded and validated."""

    @click.pass_context
    def wrapper(ctx: click.Context, /, *args: Any, **kwargs: Any) -> Any:
        return ctx.invoke(command, load_settings(ctx), *args, **kwargs)

    return functools.update_wrapper(wrapper, command)  # type: ignore[return-value]


class DatabaseGroup(click.Group):
    """Turn database connection errors into one clear line instead of a traceback."""

    def invoke(self, ctx: click.Context):
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import OperationalError, ProgrammingError

        try:
            return super().invoke(ctx)
        except (OperationalError, ProgrammingError) as exc:
            database_url = getattr(ctx.find_root().obj, "database_url", "")
            url = (make_url(database_url).render_as_string(hide_password=True)
                   if database_url else "(DATABASE_URL)")
            raise click.ClickException(
                f"Cannot use the database {url}: {exc.orig} (run `prokus db upgrade`?)"
            ) from exc


def require_data_key(settings: Settings, factory: sessionmaker[Session] | None = None) -> None:
    """Stop with one clear line when the data key is missing (PostgreSQL), malformed, or
    not the key that sealed this database's personal data (db.crypto, db.keys)."""
    from db import crypto, keys

    try:
        crypto.require_configured(settings.database_url)
        if factory is not None:
            keys.check_database(factory)
    except crypto.DataKeyError as error:
        raise click.ClickException(str(error)) from None


def require_migrated(settings: Settings) -> None:
    """Stop with one clear line when the database is not at the code's latest migration
    (a new or half-made database file, or new code on an old database)."""
    from db.migrate import revisions

    current, head = revisions(settings.database_url)
    if current != head:
        where = "has no tables yet" if current is None else f"is at migration {current}"
        raise click.ClickException(
            f"The database {mask_url(settings.database_url)} {where}; this version needs "
            f"{head}. Run `prokus db upgrade` (or `make db`) first.")


@contextlib.contextmanager
def sessions(settings: Settings, migrated: bool = False) -> Iterator[sessionmaker[Session]]:
    """A session factory on DATABASE_URL, disposed of afterwards; the data key checked
    (and with `migrated`, that the schema is the latest)."""
    from db.engine import make_engine, make_sessionmaker

    if migrated:
        require_migrated(settings)
    engine = make_engine(settings.database_url)
    try:
        factory = make_sessionmaker(engine)
        require_data_key(settings, factory)
        yield factory
    finally:
        engine.dispose()


def operator_name(value: str | None) -> str:
    """Who runs an operator command, for the audit log: --operator, PROKUS_OPERATOR or the
    login name."""
    name = value or os.environ.get("PROKUS_OPERATOR") or getpass.getuser()
    return f"operator:{name}"[:64]
