"""`prokus serve` (the operator web console) and `prokus operators` (its accounts)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from bot.cli_common import DatabaseGroup, operator_name, pass_settings, sessions, status
from bot.settings import Settings
from db.operators import ROLES

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-prokus"


def _now() -> datetime:
    return datetime.now(UTC)


def _read_password(from_stdin: bool) -> str:
    """One line from standard input, or asked twice without echo."""
    if from_stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
        if not password:
            raise click.UsageError("--password-stdin: no password on standard input "
                                   "(pipe one line, e.g. from a password manager)")
        return password
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


def _bad(exc) -> click.ClickException:
    """An OperatorError as a clear message naming the option at fault."""
    hints = {"username": "USERNAME", "role": "--role", "region": "--region",
             "password": "password"}
    hint = next((h for key, h in hints.items() if exc.code.startswith(key)), None)
    if hint is None:
        return click.ClickException(str(exc))
    return click.BadParameter(str(exc), param_hint=hint)


def is_local_demo_database(settings: Settings) -> bool:
    """True only for the default SQLite file in data/ (the one `make web` fills with fake
    data), never for a DATABASE_URL someone configured."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or not url.database:
        return False
    return Path(url.database).resolve() == (settings.data_dir / "prokus.db").resolve()


# ---------------------------------------------------------------------- serve
MAX_WORKERS = 16


def _refuse_workers_on_sqlite(settings: Settings, workers: int, webhook: bool = False) -> None:
    from sqlalchemy.engine import make_url

    if workers > 1 and make_url(settings.database_url).get_backend_name() == "sqlite":
        extra = (" The webhook's exactly-once claim and per-user order across processes "
                 "rely on PostgreSQL (advisory locks)." if webhook else "")
        raise click.BadParameter(
            f"{workers} workers need PostgreSQL: SQLite (the default DATABASE_URL) allows "
            "one writer at a time, so the console runs as a single process on it." + extra +
            " Use --workers 1, or set DATABASE_URL to a PostgreSQL database.",
            param_hint="--workers")


def _check_webhook_settings(settings: Settings) -> None:
    """--webhook needs the bot token, the webhook secret and the NLU server(s)."""
    missing = [name for name, value in (
        ("TELEGRAM_BOT_TOKEN", settings.telegram_bot_token),
        ("TELEGRAM_WEBHOOK_SECRET", settings.telegram_webhook_secret),
        ("NLU_URL", settings.nlu_url)) if not value]
    if missing:
        raise click.UsageError(
            "--webhook needs " + ", ".join(missing) + " (in .env or the environment): the "
            "token from @BotFather, a random secret of 16-256 characters (A-Z, a-z, 0-9, "
            "_ and -; e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`), "
            "and the Rasa server URL(s), comma-separated. See docs/deployment.md.")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 only behind a TLS proxy).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True,
              help="TCP port.")
@click.option("--workers", type=click.IntRange(1, MAX_WORKERS), default=1, show_default=True,
              help="Worker processes (more than 1 only on PostgreSQL; about one per CPU "
                   "core).")
@click.option("--console/--no-console", default=True, show_default=True,
              help="Serve the operators' web console on this instance.")
@click.option("--webhook/--no-webhook", default=False, show_default=True,
              help="Serve POST /telegram/webhook (the Telegram bot in webhook mode; needs "
                   "TELEGRAM_BOT_TOKEN, TELEGRAM_WEBHOOK_SECRET and NLU_URL). Register the "
                   "URL with `prokus webhook set`.")
@click.option("--worker/--no-worker", "with_worker", default=False, show_default=True,
              help="With --webhook: also send reminders and broadcasts from the outbox in "
                   "this process (otherwise run `prokus worker`). Replies to users are "
                   "sent at once either way.")
@pass_settings
def serve(settings: Settings, host: str, port: int, workers: int, console: bool,
          webhook: bool, with_worker: bool) -> None:
    """Serve the operators' web console and/or the Telegram webhook with uvicorn until
    Ctrl-C. /healthz (process up) and /readyz (database, and NLU with --webhook) are
    always served, without login.

    Sessions end after WEB_IDLE_MINUTES without a request (default 30). Behind an HTTPS
    proxy set WEB_TRUST_PROXY=1 so cookies get the Secure flag from X-Forwarded-Proto.
    Each request is logged as one line (method, path without the query string, status,
    duration) at LOG_LEVEL=INFO. Several instances (or --workers N) need PostgreSQL.
    """
    import uvicorn
    from sqlalchemy import inspect

    from db.engine import make_engine
    from web.app import create_app

    if not console and not webhook:
        raise click.UsageError("--no-console without --webhook would serve nothing: turn "
                               "on at least one of --console and --webhook.")
    if webhook:
        _check_webhook_settings(settings)
    _refuse_workers_on_sqlite(settings, workers, webhook)
    engine = make_engine(settings.database_url)
    try:
        ready = inspect(engine).has_table("operator_sessions")
    except Exception as exc:  # any connection problem becomes one line
        engine.dispose()
        raise click.ClickException(f"Cannot use the database: {exc}") from exc
    if not ready:
        engine.dispose()
        raise click.ClickException("The database has no operator tables yet; run "
                                   "`prokus db upgrade` (or `make web`).")
    from sqlalchemy.orm import sessionmaker

    from bot.cli_common import require_data_key

    try:  # a missing (PostgreSQL) or wrong data key stops here, not on the first page
        require_data_key(settings, sessionmaker(engine))
    except click.ClickException:
        engine.dispose()
        raise
    # uvicorn's access log prints query strings (a NIK search puts the NIK there): off;
    # web.security.RequestLogMiddleware logs each request without it instead.
    options: dict[str, Any] = {"host": host, "port": port, "proxy_headers": False,
                               "server_header": False, "log_config": None,
                               "access_log": False}
    what = " and ".join(([f"Operator console on http://{host}:{port}/"] if console else [])
                        + ([f"Telegram webhook on http://{host}:{port}/telegram/webhook"]
                           if webhook else []))
    if workers > 1:
        # Each worker process imports the factory, reads the settings from the environment
        # (and its role from PROKUS_SERVE_*) and builds its own app and engine.
        import os
        import shutil
        import tempfile

        engine.dispose()
        os.environ["PROKUS_SERVE_CONSOLE"] = "1" if console else "0"
        os.environ["PROKUS_SERVE_WEBHOOK"] = "1" if webhook else "0"
        os.environ["PROKUS_SERVE_WORKER"] = "1" if with_worker else "0"
        # The workers' metrics meet in one directory (prometheus_client's multiprocess
        # mode): a fresh one unless PROMETHEUS_MULTIPROC_DIR is given, removed at the end.
        own_dir = None
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            own_dir = tempfile.mkdtemp(prefix="prokus-metrics-")
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = own_dir
        status(f"{what} with {workers} workers (Ctrl-C stops it)")
        try:
            uvicorn.run("web.app:app_from_env", factory=True, workers=workers, **options)
        finally:
            if own_dir is not None:
                shutil.rmtree(own_dir, ignore_errors=True)
                os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        return
    service = None
    if webhook:
        from bot.webhook import WebhookService

        service = WebhookService(settings, with_worker=with_worker)
    app = create_app(settings, engine=engine, console=console, webhook=service)
    status(f"{what} (Ctrl-C stops it)")
    try:
        uvicorn.run(app, **options)
    finally:
        engine.dispose()


# ---------------------------------------------------------------------- operators
@click.group(cls=DatabaseGroup)
def operators() -> None:
    """Accounts of the operators' web console: add, list, disable.

    Roles: verifier (verifies registrations; with --region only that region's),
    coordinator (mentors and broadcasts), supervisor (everything, exports and accounts).
    """


@operators.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the account may do.")
@click.option("--region", default=None,
              help="Kode wilayah the account is limited to, dotted or digits, e.g. 32.01 "
                   "(optional; stored as digits, checked against the regions table once "
                   "loaded).")
@click.option("--password-stdin", is_flag=True,
              help="Read the password (10-256 characters) from one line of standard input "
                   "instead of asking for it.")
@click.option("--operator", default=None, help="Your name for the audit log "
              "(default: PROKUS_OPERATOR or your login name).")
@pass_settings
def operators_add(settings: Settings, username: str, role: str, region: str | None,
                  password_stdin: bool, operator: str | None) -> None:
    """Create the console account USERNAME (3-32 characters: a-z, 0-9, '.', '_', '-')."""
    from db import operators as accounts
    from db import repo

    try:  # check what can be checked before asking for a password
        accounts.check_username(username)
        if accounts.check_region(region) is not None:
            with sessions(settings) as factory, factory() as session:
                accounts.check_known_region(session, region)
    except accounts.OperatorError as exc:
        raise _bad(exc) from exc
    password = _read_password(password_stdin)
    try:
        with sessions(settings) as factory, factory.begin() as session:
            account = accounts.add_operator(session, username, role, password, region,
                                            now=_now())
            repo.audit(session, operator_name(operator), "operator_add", "ok",
                       subject=f"operator:{account.username}",
                       detail={"role": account.role, "region": account.kode_wilayah,
                               "via": "cli"})
            name, code = account.username, account.kode_wilayah
    except accounts.OperatorError as exc:
        raise _bad(exc) from exc
    where = f", region {accounts.dotted_region(code)}" if code else ""
    click.echo(f"operator {name} added ({role}{where})")


@operators.command("list")
@pass_settings
def operators_list(settings: Settings) -> None:
    """Show every account with its role, region and state."""
    from db import operators as accounts

    now = _now()
    with sessions(settings) as factory, factory() as session:
        rows = []
        for account in accounts.list_operators(session):
            if not account.is_active:
                state = "disabled"
            elif account.locked_until and account.locked_until > now:
                state = f"locked until {account.locked_until:%Y-%m-%d %H:%M} UTC"
            else:
                state = "active"
            rows.append({
                "username": account.username, "role": account.role,
                "region": accounts.dotted_region(account.kode_wilayah) or "-",
                "state": state,
                "last_login": (f"{account.last_login_at:%Y-%m-%d %H:%M} UTC"
                               if account.last_login_at else "-"),
            })
    if not rows:
        status("No operators yet; add one with `prokus operators add USERNAME --role ...`.")
        return
    columns = ("username", "role", "region", "state", "last_login")
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in columns}
    click.echo("  ".join(c.ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        click.echo("  ".join(row[c].ljust(widths[c]) for c in columns).rstrip())
    status(f"{len(rows)} operator(s)")


@operators.command("disable")
@click.argument("username")
@click.option("--operator", default=None, help="Your name for the audit log "
              "(default: PROKUS_OPERATOR or your login name).")
@pass_settings
def operators_disable(settings: Settings, username: str, operator: str | None) -> None:
    """Disable the account USERNAME; its open console sessions end at once."""
    from db import operators as accounts
    from db import repo

    try:
        with sessions(settings) as factory, factory.begin() as session:
            account = accounts.disable_operator(session, username)
            repo.audit(session, operator_name(operator), "operator_disable", "ok",
                       subject=f"operator:{account.username}", detail={"via": "cli"})
            name = account.username
    except accounts.OperatorError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"operator {name} disabled; their sessions have ended")


@operators.command("password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True,
              help="Read the new password from one line of standard input.")
@click.option("--operator", default=None, help="Your name for the audit log "
              "(default: PROKUS_OPERATOR or your login name).")
@pass_settings
def operators_password(settings: Settings, username: str, password_stdin: bool,
                       operator: str | None) -> None:
    """Set a new password for USERNAME (this also lifts a login lockout)."""
    from db import operators as accounts
    from db import repo

    with sessions(settings) as factory, factory() as session:
        if accounts.get_operator(session, username) is None:
            raise click.ClickException(
                f"no operator named {accounts.normalise_username(username)!r}")
    password = _read_password(password_stdin)
    try:
        with sessions(settings) as factory, factory.begin() as session:
            account = accounts.set_password(session, username, password)
            repo.audit(session, operator_name(operator), "operator_password", "ok",
                       subject=f"operator:{account.username}", detail={"via": "cli"})
            name = account.username
    except accounts.OperatorError as exc:
        raise _bad(exc) from exc
    click.echo(f"new password set for {name}")


@operators.command("demo")
@pass_settings
def operators_demo(settings: Settings) -> None:
    """Ensure the demo supervisor exists, on the local demo database only, and print its
    login. Refuses any DATABASE_URL other than the default data/prokus.db."""
    from db import operators as accounts
    from db import repo

    if not is_local_demo_database(settings):
        raise click.ClickException(
            "refusing to create the demo account: DATABASE_URL is not the local demo "
            f"database ({settings.data_dir / 'prokus.db'}). Add real accounts with "
            "`prokus operators add USERNAME --role ... --password-stdin`.")
    with sessions(settings) as factory, factory.begin() as session:
        account = accounts.get_operator(session, DEMO_USERNAME)
        if account is None:
            account = accounts.add_operator(session, DEMO_USERNAME, "supervisor",
                                            DEMO_PASSWORD, now=_now())
            repo.audit(session, operator_name(None), "operator_add", "ok",
                       subject=f"operator:{DEMO_USERNAME}",
                       detail={"role": "supervisor", "region": None, "via": "cli", "demo": True})
        else:  # keep the printed login true: reset the password, role and lockout
            accounts.set_password(session, DEMO_USERNAME, DEMO_PASSWORD)
            account.role, account.is_active = "supervisor", True
    click.echo(f"Demo console login (demo database only): username {DEMO_USERNAME}, "
               f"password {DEMO_PASSWORD}")
