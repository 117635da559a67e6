"""The `prokus` command line."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from bot.cli_common import DatabaseGroup, pass_settings, require_data_key, sessions
from bot.cli_common import status as _status
from bot.logging import configure_logging
from bot.settings import Settings

log = logging.getLogger("prokus")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Asisten Prokus: console chat, Telegram bot, database and NLU tools.

    Settings come from the environment and `.env` (see .env.example); each command reads
    and checks them when it runs, so a wrong value is reported with what is allowed.
    """


def nlu_token(settings: Settings) -> str:
    """The auth token of a local NLU server: NLU_AUTH_TOKEN, else one generated now and put
    in this process's environment (NLU_AUTH_TOKEN), where bot.app.make_nlu_client and
    `prokus nlu eval` find it."""
    import os
    import secrets

    token = settings.nlu_auth_token or os.environ.get("NLU_AUTH_TOKEN") or ""
    if not token:
        token = secrets.token_urlsafe(32)
        os.environ["NLU_AUTH_TOKEN"] = token
    return token


@contextlib.contextmanager
def nlu_url(settings: Settings) -> Iterator[str]:
    """Yield the NLU server URL: `NLU_URL` if set, else a local server started for us (with
    `--auth-token`, see nlu_token)."""
    if settings.nlu_url:
        yield settings.nlu_url
        return
    from nlu.model import train
    from nlu.server import NLUServer, free_port, port_is_free

    model = train(settings.project_root, settings.rasa_executable, settings.models_dir)
    port = settings.nlu_port if port_is_free(settings.nlu_port) else free_port()
    server = NLUServer(
        settings.rasa_executable, model, port, settings.data_dir / "nlu-server.log",
        settings.project_root, auth_token=nlu_token(settings),
    )
    _status(f"Starting the NLU server on 127.0.0.1:{port} (model {model.name}) ...")
    with click.progressbar(length=0, label="Loading NLU model", file=sys.stderr) as bar:
        server.start(on_wait=lambda: bar.update(1))
    _status("NLU server ready.")
    try:
        yield server.url
    finally:
        server.stop()
        _status("NLU server stopped.")


@main.command()
@click.option(
    "--user", "user_id", default="1", show_default=True,
    help="Console user id; the same id continues its stored conversation.",
)
@pass_settings
def chat(settings: Settings, user_id: str) -> None:
    """Chat with the assistant in this terminal (or from piped lines)."""
    from bot.app import build_assistant, make_nlu_client
    from bot.console import run

    with sessions(settings, migrated=True):  # schema and data key checked before the NLU
        pass

    # Keep the conversation readable: logs go to a file, not between the messages.
    configure_logging(settings.log_level, settings.log_json, path=settings.data_dir / "console.log")
    try:
        with nlu_url(settings) as url:
            client = make_nlu_client(settings, url)
            try:
                run(build_assistant(settings, client), user_id)
            finally:
                client.close()
    except (FileNotFoundError, RuntimeError, TimeoutError) as exc:
        raise click.ClickException(str(exc)) from exc


@main.command("run")
@click.option("--worker/--no-worker", "with_worker", default=True, show_default=True,
              help="Send reminders, broadcasts and notices from the outbox in this process "
                   "(use --no-worker when separate `prokus worker` processes do it).")
@click.option("--metrics-port", type=click.IntRange(1, 65535), default=None,
              help="Serve Prometheus metrics on http://HOST:PORT/metrics (off by default; "
                   "PROKUS_METRICS_TOKEN, when set, is required as a bearer token).")
@click.option("--metrics-host", default="127.0.0.1", show_default=True,
              help="Address of the metrics server.")
@pass_settings
def run_bot(settings: Settings, with_worker: bool, metrics_port: int | None,
            metrics_host: str) -> None:
    """Run the Telegram bot (polling)."""
    if not settings.telegram_bot_token:
        raise click.ClickException(
            "TELEGRAM_BOT_TOKEN is not set. Get a token from @BotFather and put it in .env "
            "(TELEGRAM_BOT_TOKEN=123456:ABC...) or in the environment."
        )
    from bot.telegram import run_polling

    with sessions(settings, migrated=True):  # schema and data key checked first
        pass
    try:
        with nlu_url(settings) as url:
            run_polling(settings, url, with_worker=with_worker, metrics_port=metrics_port,
                        metrics_host=metrics_host)
    except (FileNotFoundError, RuntimeError, TimeoutError) as exc:
        raise click.ClickException(str(exc)) from exc


@main.group(cls=DatabaseGroup)
def db() -> None:
    """Database migrations and demo data."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@pass_settings
def db_upgrade(settings: Settings, revision: str) -> None:
    """Migrate the database (DATABASE_URL) to the latest schema."""
    from db.migrate import upgrade

    upgrade(settings.database_url, revision)
    _status("Database is up to date.")


@db.command("downgrade")
@click.argument("revision")
@pass_settings
def db_downgrade(settings: Settings, revision: str) -> None:
    """Migrate the database down to REVISION (e.g. base)."""
    from db.migrate import downgrade

    downgrade(settings.database_url, revision)
    _status(f"Database downgraded to {revision}.")


@db.command("demo")
@pass_settings
def db_demo(settings: Settings) -> None:
    """Load clearly fake demo records (idempotent) and print the NIK and name of each to try.

    Birth dates are relative to today, so the NIKs (which embed them) change with the year.
    """
    from db.demo import demo_rows, load_demo, today_wib
    from db.engine import make_engine, make_sessionmaker

    today = today_wib()
    engine = make_engine(settings.database_url)
    require_data_key(settings, make_sessionmaker(engine))
    with make_sessionmaker(engine).begin() as session:
        added = load_demo(session, today)
    engine.dispose()
    _status(f"Demo data: {added} fake records added.")
    click.echo("Demo KPM to try (NIK, name, what the check says):")
    for nik, name, record in demo_rows(today):
        click.echo(f"  {nik}  {name:<22}  {record.note}")


@main.group(cls=DatabaseGroup)
def kpm() -> None:
    """The KPM registry (PKH beneficiaries): import and demo data."""


@kpm.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--rejects", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write rejected rows (default: CSV_FILE.rejected.csv).")
@pass_settings
def kpm_import(settings: Settings, csv_file: Path, rejects: Path | None) -> None:
    """Import (upsert by NIK) a registry CSV with the header
    nik,nama,tanggal_lahir,jenis_kelamin,kode_wilayah,status_pkh,tanggal_graduasi,no_hp."""
    from db.engine import make_engine, make_sessionmaker
    from db.kpm_import import RowError, import_csv

    rejects = rejects or csv_file.with_suffix(".rejected.csv")
    engine = make_engine(settings.database_url)
    require_data_key(settings, make_sessionmaker(engine))
    try:
        with open(csv_file, encoding="utf-8-sig", newline="") as source, \
                open(rejects, "w", encoding="utf-8", newline="") as report, \
                click.progressbar(length=csv_file.stat().st_size, label="Importing",
                                  file=sys.stderr) as bar:
            result = import_csv(make_sessionmaker(engine), source, report, bar.update)
    except RowError as exc:
        raise click.ClickException(str(exc)) from exc
    except UnicodeDecodeError as exc:
        raise click.ClickException(f"{csv_file} is not UTF-8 text: {exc}") from exc
    finally:
        engine.dispose()
    if result.regions_unchecked:
        from db.kpm_import import REGIONS_UNCHECKED

        click.echo(f"warning: {REGIONS_UNCHECKED}", err=True)
    click.echo(
        f"rows {result.rows}: inserted {result.inserted}, updated {result.updated}, "
        f"unchanged {result.unchanged}, rejected {result.rejected}"
        + (f", duplicate NIKs in file {result.duplicates_in_file}"
           if result.duplicates_in_file else "")
        + (f", warnings {result.warnings}" if result.warnings else "")
    )
    if result.rejected:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(result.reasons.items()))
        click.echo(f"rejected rows ({reasons}) are listed in {rejects}")
    else:
        rejects.unlink(missing_ok=True)


@kpm.command("demo")
@click.option("--count", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--seed", type=int, default=7, show_default=True)
def kpm_demo(count: int, out: Path, seed: int) -> None:
    """Write COUNT clearly fake registry rows (names "Contoh ... (FIKTIF)") to a CSV."""
    from db.kpm_import import write_demo

    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8", newline="") as fh, \
            click.progressbar(length=count, label="Writing demo rows", file=sys.stderr) as bar:
        write_demo(fh, count, seed, bar.update)
    click.echo(f"{count} fake rows written to {out}")


@main.group()
def nlu() -> None:
    """Train and serve the Rasa NLU model."""


@nlu.command("train")
@click.option("--force", is_flag=True, help="Train even when a model for the current data exists.")
@pass_settings
def nlu_train(settings: Settings, force: bool) -> None:
    """Train the NLU model unless one matches config.yml + nlu/ already."""
    from nlu.model import model_path, train

    target = model_path(settings.project_root, settings.models_dir)
    if target.exists() and not force:
        _status(f"NLU model is up to date: {target.name}")
        return
    _status(f"Training NLU model {target.name} ...")
    try:
        train(settings.project_root, settings.rasa_executable, settings.models_dir, force=force)
    except (FileNotFoundError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
    _status(f"NLU model written: {target}")


@nlu.command("serve")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port on 127.0.0.1 (default NLU_PORT, 5005).")
@pass_settings
def nlu_serve(settings: Settings, port: int | None) -> None:
    """Run the Rasa NLU HTTP API in the foreground until Ctrl-C.

    The API needs a token (Rasa's --auth-token): NLU_AUTH_TOKEN, else a generated one
    printed here once; give it to the bot as NLU_AUTH_TOKEN.
    """
    import os

    from nlu.model import model_path, rasa_env

    model = model_path(settings.project_root, settings.models_dir)
    if not model.exists():
        raise click.ClickException("No NLU model for the current data; run `make train`.")
    generated = not (settings.nlu_auth_token or os.environ.get("NLU_AUTH_TOKEN"))
    token = nlu_token(settings)
    cmd = [str(settings.rasa_executable), "run", "--enable-api", "-m", str(model),
           "-i", "127.0.0.1", "-p", str(port or settings.nlu_port), "--auth-token", token]
    _status(f"Serving {model.name} on http://127.0.0.1:{port or settings.nlu_port}")
    if generated:
        _status(f"Generated NLU_AUTH_TOKEN for this server: {token}\n"
                "(set NLU_AUTH_TOKEN in .env to choose your own; the bot needs the same value)")
    os.chdir(settings.project_root)
    os.execve(cmd[0], cmd, rasa_env(settings.project_root))


@nlu.command("eval")
@click.option("--test-set", type=click.Path(exists=True, path_type=Path), default=None,
              help="Rasa NLU YAML file (default nlu/tests/test_set.yml, and then "
                   "nlu/tests/reviewed_set.yml when `prokus nlu export-reviewed` wrote one).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Where to write nlu-eval.json and the confusion report (default results/; "
                   "the reviewed set's as nlu-eval-reviewed.*).")
@pass_settings
def nlu_eval(settings: Settings, test_set: Path | None, out_dir: Path | None) -> None:
    """Evaluate the model on the held-out test set through the NLU HTTP server (and on the
    operators' reviewed set, when there is one)."""
    import httpx

    from nlu.client import split_urls
    from nlu.evaluation import format_summary, load_examples, run, write_report
    from nlu.reviewed import TEST_FILE, reviewed_test_set

    root = settings.project_root
    sets = [("held-out set", "nlu-eval",
             load_examples(test_set or root / "nlu" / "tests" / "test_set.yml"))]
    reviewed = None if test_set else reviewed_test_set(root)
    if reviewed is not None:
        sets.append(("reviewed set", "nlu-eval-reviewed", load_examples(reviewed)))
    reports = []
    try:
        with nlu_url(settings) as url, httpx.Client(  # the first of an NLU_URL list
                base_url=split_urls(url)[0], timeout=30, params=_token_params(settings)) as http:

            def parse(text: str) -> dict:
                response = http.post("/model/parse", json={"text": text})
                response.raise_for_status()
                return response.json()

            for title, name, examples in sets:
                with click.progressbar(examples, label=f"Parsing {title}",
                                       file=sys.stderr) as bar:
                    reports.append((title, name, run(examples, parse,
                                                     progress=lambda items, b=bar: b)))
    except (FileNotFoundError, RuntimeError, TimeoutError, httpx.HTTPError) as exc:
        raise click.ClickException(str(exc)) from exc
    for index, (title, name, report) in enumerate(reports):
        json_path, md_path = write_report(report, out_dir or root / "results", name)
        if index:
            click.echo(f"\n{title} ({TEST_FILE}):")
        click.echo(format_summary(report))
        click.echo(f"report: {json_path}  confusion: {md_path}")


def _token_params(settings: Settings) -> dict[str, str] | None:
    import os

    token = settings.nlu_auth_token or os.environ.get("NLU_AUTH_TOKEN")
    return {"token": token} if token else None


@nlu.command("fingerprint")
@pass_settings
def nlu_fingerprint(settings: Settings) -> None:
    """Print the fingerprint of config.yml + nlu/ (the model file name)."""
    from nlu.model import model_path

    click.echo(model_path(settings.project_root, settings.models_dir).name)


from bot.cli_keys import keys  # noqa: E402
from bot.cli_mentoring import broadcast, mentors, worker  # noqa: E402
from bot.cli_nlu_review import export_reviewed, purge_unreviewed  # noqa: E402
from bot.cli_privacy import retention  # noqa: E402
from bot.cli_regions import regions  # noqa: E402
from bot.cli_registrations import registrations  # noqa: E402
from bot.cli_web import operators, serve  # noqa: E402
from bot.cli_webhook import webhook  # noqa: E402

for command in (registrations, regions, mentors, broadcast, worker, operators, serve, keys):
    main.add_command(command)
main.add_command(retention)
main.add_command(webhook)
nlu.add_command(export_reviewed)
nlu.add_command(purge_unreviewed)

if __name__ == "__main__":
    main()
