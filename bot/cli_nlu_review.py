"""`prokus nlu export-reviewed`: operator-labelled messages become NLU data (issue 14)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

from bot.cli_common import pass_settings, sessions, status
from bot.settings import Settings

T = TypeVar("T")


def _read(work: Callable[[], T], settings: Settings) -> T:
    """Run database work; a database that is away or not migrated is one clear line."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import OperationalError, ProgrammingError

    try:
        return work()
    except (OperationalError, ProgrammingError) as exc:
        url = make_url(settings.database_url).render_as_string(hide_password=True)
        raise click.ClickException(
            f"Cannot use the database {url}: {exc.orig} (run `prokus db upgrade`?)") from exc


@click.command("export-reviewed")
@click.option("--test-share", type=click.FloatRange(0, 1, max_open=True), default=0.2,
              show_default=True,
              help="Share of the reviewed messages kept aside as the test set "
                   "nlu/tests/reviewed_set.yml (0: all of them go to training).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the split. Keep it: with the same seed a message always lands "
                   "in the same file; a new seed reshuffles which ones are held out.")
@pass_settings
def export_reviewed(settings: Settings, test_share: float, seed: int) -> None:
    """Write the messages operators labelled in the console (/nlu/review) as NLU data.

    \b
    nlu/data/reviewed.yml       training examples: the next `make train` learns from them
    nlu/tests/reviewed_set.yml  a fresh test set, reported on by `prokus nlu eval`

    FAQ answers are written as the retrieval intent faq/<key>. A message is written once
    (by its normalised text), never when it is already in another nlu/data or nlu/tests
    file, and always to the same one of the two files (a hash of its text decides), so
    running the export again only adds what is new. Examples already in the two files are
    kept (for a message in both, the file wins: a correction by hand stays).
    """
    from db.nlu_review import labelled_examples
    from nlu.reviewed import TEST_FILE, TRAINING_FILE, export

    with sessions(settings) as factory, factory() as session:
        labelled = _read(lambda: labelled_examples(session), settings)
    result = export(settings.project_root, labelled, test_share=test_share, seed=seed)
    status(f"{len(labelled)} labelled messages in the database, {result.new} new to the "
           f"files, {result.kept_from_files} kept from them.")
    skipped = {"already in nlu/data": result.already_in_data,
               "in an nlu/tests set": result.in_test_sets,
               "duplicate text": result.duplicates,
               "label no longer in the domain": result.unknown_label,
               "nothing left after normalising": result.empty}
    shown = ", ".join(f"{count} {why}" for why, count in skipped.items() if count)
    if shown:
        status(f"Skipped: {shown}.")
    click.echo(f"training  {result.training:5d}  {TRAINING_FILE}")
    click.echo(f"test      {result.test:5d}  {TEST_FILE}")
    for label, count in sorted(result.per_label.items()):
        click.echo(f"  {label:32s} {count}")
    if result.new:
        status("Run `make train` to learn from them, then `make nlu-eval`.")


@click.command("purge-unreviewed")
@click.option("--days", type=click.IntRange(1), default=90, show_default=True,
              help="Keep messages younger than this many days.")
@pass_settings
def purge_unreviewed(settings: Settings, days: int) -> None:
    """Delete not-understood messages nobody reviewed within --days (and discarded ones
    --days after they were discarded); labelled ones stay.

    `prokus run` does this daily by itself; use this command (e.g. from cron) when the bot
    runs as webhook (`prokus serve`) without the polling process.
    """
    from datetime import UTC, datetime

    from db.nlu_review import purge

    with sessions(settings) as factory, factory.begin() as session:
        deleted = _read(lambda: purge(session, datetime.now(UTC), days=days), settings)
    click.echo(f"{deleted} messages deleted")
