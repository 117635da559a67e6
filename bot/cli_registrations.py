"""`prokus registrations`: the operator's view of registrations (list, export, status).

CSV output is safe to open in a spreadsheet (OWASP, CSV injection): a text cell starting
with `=`, `+`, `-`, `@`, a tab or a carriage return (also after leading spaces) gets a
leading `'`, so it is shown as text and never evaluated; `=HYPERLINK(...)` in a business
description stays text. Phone numbers in the full export are written in the national form,
grouped (`0812 3456 7890`): a spreadsheet keeps that as text (no formula from the `+`, no
number that loses its leading zero) and it is the number a verifier dials.
"""

from __future__ import annotations

import contextlib
import csv
import sys
from pathlib import Path

import click

from bot.cli_common import DatabaseGroup, operator_name, pass_settings, sessions, status
from bot.settings import Settings
from db.registration_queue import (  # noqa: F401  (spreadsheet_* are imported from here)
    EXPORT_COLUMNS,
    csv_row,
    export_row,
    row_of,
    spreadsheet_phone,
    spreadsheet_safe,
)
from domain import registration as rules

STATUS = click.Choice(rules.STATUSES)
LIST_COLUMNS = ("number", "created", "status", "nik", "nama", "no_hp", "kabupaten",
                "bidang_usaha")


def _row(registration, masked: bool) -> dict[str, object]:
    return row_of(registration, masked)


@click.group(cls=DatabaseGroup)
def registrations() -> None:
    """Registrations submitted through the assistant: list, export, change status."""


@registrations.command("list")
@click.option("--status", "wanted", type=STATUS, default=None, help="Only this status.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv"]), default="table",
              show_default=True)
@pass_settings
def list_registrations(settings: Settings, wanted: str | None, fmt: str) -> None:
    """Show registrations, oldest first, with NIK and phone masked."""
    from db import registrations as repo

    with sessions(settings) as factory, factory() as session:
        rows = [_row(r, masked=True) for r in repo.query(session, wanted)]
    if fmt == "csv":
        writer = csv.DictWriter(sys.stdout, LIST_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(csv_row(r) for r in rows)
        return
    if not rows:
        status("No registrations" + (f" with status {wanted}." if wanted else "."))
        return
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in LIST_COLUMNS}
    click.echo("  ".join(c.ljust(widths[c]) for c in LIST_COLUMNS))
    for r in rows:
        click.echo("  ".join(str(r[c]).ljust(widths[c]) for c in LIST_COLUMNS))
    status(f"{len(rows)} registration(s)")


@registrations.command("export")
@click.option("--status", "wanted", type=STATUS, default=None, help="Only this status.")
@click.option("--format", "fmt", type=click.Choice(["csv"]), default="csv", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File to write (default: standard output).")
@click.option("--operator", default=None, help="Your name for the audit log "
              "(default: PROKUS_OPERATOR or your login name).")
@pass_settings
def export_registrations(settings: Settings, wanted: str | None, fmt: str, out: Path | None,
                         operator: str | None) -> None:
    """Export registrations with full NIK and phone for verification (audited).

    Safe to open in a spreadsheet: cells that would start a formula (= + - @) begin with
    ', and phones are written as 0812 3456 7890.
    """
    from db import registration_queue as queue
    from db.repo import audit

    actor = operator_name(operator)
    with sessions(settings) as factory, factory.begin() as session:
        with (open(out, "w", encoding="utf-8", newline="") if out
              else contextlib.nullcontext(sys.stdout)) as target:
            writer = csv.DictWriter(target, EXPORT_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            count = 0
            rows = queue.stream(session, queue.Filter(status=wanted))
            with click.progressbar(rows, label="Exporting", file=sys.stderr) as bar:
                for registration in bar:  # the same rows as the console's export
                    writer.writerow(export_row(registration, masked=False))
                    count += 1
        audit(session, actor, "registrations_export", "ok",
              detail={"status": wanted, "rows": count, "format": fmt,
                      "to": str(out) if out else "stdout"})
    status(f"{count} registration(s) exported" + (f" to {out}" if out else ""))


@registrations.command("set-status")
@click.argument("number")
@click.option("--status", "new_status", type=click.Choice(rules.STATUSES[1:]), required=True,
              help="diverifikasi, diterima or ditolak.")
@click.option("--reason", default=None, help="Why (required for ditolak; shown to the "
              "applicant).")
@click.option("--operator", default=None, help="Your name for the audit log "
              "(default: PROKUS_OPERATOR or your login name).")
@pass_settings
def set_status(settings: Settings, number: str, new_status: str, reason: str | None,
               operator: str | None) -> None:
    """Change the status of registration NUMBER (PRK-YYYY-NNNNNN) and notify the applicant.

    Allowed: diajukan -> diverifikasi | ditolak, diverifikasi -> diterima | ditolak.
    The notice is written to the outbox in the same transaction and sent by the worker.
    """
    from actions.responses import Responses
    from db import registrations as repo

    number = number.strip().upper()
    if not rules.NUMBER_RE.match(number):
        raise click.BadParameter("expected a number like PRK-2026-000123", param_hint="NUMBER")
    texts = Responses.load()
    actor = operator_name(operator)

    def notice(registration) -> str:
        return texts(f"status_notice/{new_status}", number=registration.number,
                     reason=(reason or "").strip())

    try:
        with sessions(settings) as factory, factory.begin() as session:
            registration = repo.set_status(session, number, new_status, reason, actor, notice)
            queued = registration.user_id is not None
    except rules.StatusChangeError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{number}: {new_status}" + (" (notice queued for the applicant)" if queued
                                             else " (no chat account to notify)"))
