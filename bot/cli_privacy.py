"""`prokus retention`: apply the retention table of docs/privacy.md (db/retention.py)."""

from __future__ import annotations

import click

from bot.cli_common import DatabaseGroup, pass_settings, sessions
from bot.cli_common import status as _status
from bot.settings import Settings

LABELS = {
    "forms_cleared": "unfinished forms cleared",
    "contexts_cleared": "handoff contexts (recent messages) cleared",
    "handoff_messages": "handoff messages deleted",
    "nlu_misses": "not-understood messages deleted",
    "outbox_texts": "outbox texts deleted",
    "audit_rows": "audit rows deleted",
    "audit_released": "audit rows given the pseudonym of an erasure (/hapus_data)",
    "skipped": "conversations unreadable (skipped, see the log)",
}


def policy_of(settings: Settings):
    """The retention policy with the configured form retention (PROKUS_FORM_RETENTION_DAYS)."""
    from db.retention import Policy

    return Policy(form_days=settings.form_retention_days)


@click.group(cls=DatabaseGroup)
def retention() -> None:
    """Delete personal data past its retention period (docs/privacy.md)."""


@retention.command("run")
@click.option("--dry-run", is_flag=True,
              help="Only count what would be cleared or deleted; change nothing.")
@pass_settings
def retention_run(settings: Settings, dry_run: bool) -> None:
    """Clear unfinished forms older than PROKUS_FORM_RETENTION_DAYS (default 7; the user is
    told at their next message), delete handoff and not-understood message texts older than
    90 days, replace outbox texts 30 days after their last delivery, and delete audit rows
    older than 5 years. Prints one count per kind. The bot (`prokus run`) does this daily;
    safe to run at any time and from several places."""
    from db.retention import run

    with sessions(settings) as make_session:
        report = run(make_session, policy=policy_of(settings), dry_run=dry_run)
    if dry_run:
        _status("Dry run: nothing was changed; counts are what a run would do.")
    for name, count in report.items():
        click.echo(f"{LABELS.get(name, name)}: {count}")
