"""`prokus mentors`, `prokus broadcast` and `prokus worker`: the operator's side of
mentoring and proactive messages."""

from __future__ import annotations

import asyncio
import signal
import sys
import time

import click

from bot.cli_common import DatabaseGroup, operator_name, pass_settings, sessions, status
from bot.settings import Settings
from domain import phone as phone_rules
from domain import regions
from domain.numbers import is_ascii_digits, read_int

DB_ID_MAX = 2**31 - 1  # PostgreSQL INTEGER; larger ids cannot exist
DB_ID = click.IntRange(1, DB_ID_MAX)


def _error(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


# ---------------------------------------------------------------------- mentors
@click.group(cls=DatabaseGroup)
def mentors() -> None:
    """Mentors (pendamping): add, assign registrations, list."""


@mentors.command("add")
@click.option("--telegram-id", required=True, help="The mentor's numeric Telegram user id.")
@click.option("--name", required=True, help="Full name, shown to mentees.")
@click.option("--phone", required=True, help="Mobile number, shown to mentees (08... or +62...).")
@click.option("--region", required=True,
              help="Kode wilayah of the area (e.g. 3201 or 73.71); sets WIB/WITA/WIT.")
@click.option("--operator", default=None, help="Your name for the audit log.")
@pass_settings
def mentors_add(settings: Settings, telegram_id: str, name: str, phone: str, region: str,
                operator: str | None) -> None:
    """Give a Telegram account the mentor role."""
    from db import mentoring, repo

    if not is_ascii_digits(telegram_id.strip()) or len(telegram_id.strip()) > 15:
        raise click.BadParameter("a numeric Telegram user id", param_hint="--telegram-id")
    number = phone_rules.normalise(phone)
    if number is None:
        raise click.BadParameter("an Indonesian mobile number such as 081234567890",
                                 param_hint="--phone")
    if not regions.valid_region(region):
        raise click.BadParameter("2-10 digits starting with a province code, e.g. 3201",
                                 param_hint="--region")
    code = region.replace(".", "")
    try:
        with sessions(settings) as factory, factory.begin() as session:
            mentor = mentoring.add_mentor(session, telegram_id.strip(), " ".join(name.split()),
                                          number, code)
            repo.audit(session, operator_name(operator), "mentor_add", "ok",
                       subject=f"mentor:{mentor.id}", detail={"region": code})
            mentor_id = mentor.id
    except mentoring.MentoringError as exc:
        raise _error(exc) from exc
    click.echo(f"mentor {mentor_id}: {name} ({regions.zone_name(code)}); their /jadwal_baru, "
               "/peserta and /kirim now work in Telegram")


@mentors.command("assign")
@click.argument("mentor_id", type=DB_ID)
@click.argument("number")
@click.option("--operator", default=None, help="Your name for the audit log.")
@pass_settings
def mentors_assign(settings: Settings, mentor_id: int, number: str,
                   operator: str | None) -> None:
    """Assign registration NUMBER (accepted) to MENTOR_ID; the mentee also gets the
    reminders of the mentor's coming sessions."""
    from actions.schedule import add_mentee_to_upcoming, remove_mentee_from_upcoming
    from db import mentoring, repo

    number = number.strip().upper()
    try:
        with sessions(settings) as factory, factory.begin() as session:
            registration, previous = mentoring.assign(session, mentor_id, number)
            mentor = mentoring.mentor_by_id(session, mentor_id)
            added = 0
            if registration.user_id:
                if previous:
                    remove_mentee_from_upcoming(session, previous, registration.user_id)
                added = add_mentee_to_upcoming(session, mentor, registration.user_id)
            repo.audit(session, operator_name(operator), "mentor_assign", "ok", subject=number,
                       detail={"mentor": mentor_id, "previous": previous})
    except mentoring.MentoringError as exc:
        raise _error(exc) from exc
    moved = f" (was mentor {previous})" if previous else ""
    click.echo(f"{number} -> mentor {mentor_id}{moved}; {added} reminder(s) added")


@mentors.command("list")
@pass_settings
def mentors_list(settings: Settings) -> None:
    """List mentors with their region and number of mentees."""
    from db import mentoring

    with sessions(settings) as factory, factory() as session:
        rows = mentoring.mentors_with_counts(session)
    if not rows:
        status("No mentors yet: add one with `prokus mentors add`.")
        return
    click.echo(f"{'id':>4}  {'telegram':<12}  {'region':<10}  {'zone':<4}  {'mentees':>7}  name")
    for mentor, telegram_id, count in rows:
        click.echo(f"{mentor.id:>4}  {telegram_id:<12}  {mentor.kode_wilayah:<10}  "
                   f"{regions.zone_name(mentor.kode_wilayah):<4}  {count:>7}  {mentor.nama}")


# ---------------------------------------------------------------------- broadcast
def _recipients(session, target: str) -> tuple[str, list[int]]:
    """(description, user ids) for mentees:ID, registrants:STATUS or region:CODE."""
    from sqlalchemy import select

    from db import mentoring
    from db.models import Kpm, Registration
    from domain import registration as rules

    kind, _, value = target.partition(":")
    mentor_id = read_int(value, 10, 1, DB_ID_MAX) if kind == "mentees" else None
    if mentor_id is not None:
        mentor = mentoring.mentor_by_id(session, mentor_id)
        return f"mentees of mentor {mentor.id} ({mentor.nama})", \
            mentoring.mentee_user_ids(session, mentor.id)
    if kind == "registrants" and value in rules.STATUSES:
        ids = session.scalars(select(Registration.user_id).where(
            Registration.status == value, Registration.user_id.is_not(None))).all()
        return f"registrants with status {value}", list(dict.fromkeys(ids))
    if kind == "region" and regions.valid_region(value):
        code = value.replace(".", "")
        ids = session.scalars(select(Registration.user_id).join(
            Kpm, Kpm.nik == Registration.nik).where(
            Kpm.kode_wilayah.startswith(code), Registration.status.in_(rules.ACTIVE),
            Registration.user_id.is_not(None))).all()
        return f"registrants in region {code}", list(dict.fromkeys(ids))
    raise click.BadParameter("use mentees:MENTOR_ID, registrants:STATUS (diajukan, "
                             "diverifikasi, diterima, ditolak) or region:CODE", param_hint="--to")


@click.group(cls=DatabaseGroup)
def broadcast() -> None:
    """Messages to many users at once, through the durable outbox."""


@broadcast.command("send")
@click.option("--to", "target", required=True,
              help="mentees:MENTOR_ID, registrants:STATUS or region:CODE.")
@click.option("--text", required=True, help="The message (Indonesian, plain text).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Show progress until every recipient has a final state.")
@click.option("--operator", default=None, help="Your name for the audit log.")
@pass_settings
def broadcast_send(settings: Settings, target: str, text: str, yes: bool, wait: bool,
                   operator: str | None) -> None:
    """Preview, confirm and queue a broadcast; the outbox worker sends it at the configured
    rate (OUTBOX_RATE, default 30/s) and never twice to anyone."""
    from sqlalchemy import select

    from db import mentoring, repo
    from db.models import User
    from db.outbox import enqueue

    text = text.strip()
    if not 1 <= len(text) <= 4096:
        raise click.BadParameter("1-4096 characters", param_hint="--text")
    actor = operator_name(operator)
    with sessions(settings) as factory:
        try:
            with factory() as session:
                description, user_ids = _recipients(session, target)
                users = session.scalars(select(User).where(User.id.in_(user_ids))).all() \
                    if user_ids else []
        except mentoring.MentoringError as exc:
            raise _error(exc) from exc
        reachable = [u.id for u in users if u.is_active and u.channel == "telegram"]
        skipped = len(user_ids) - len(reachable)
        click.echo(f"To: {description}: {len(reachable)} recipient(s)"
                   + (f" ({skipped} skipped: blocked the bot or not on Telegram)"
                      if skipped else ""))
        click.echo("Text:\n" + "\n".join(f"  | {line}" for line in text.splitlines()))
        if not reachable:
            raise click.ClickException("nobody to send to")
        if not yes:
            click.confirm("Send?", abort=True)
        with factory.begin() as session:
            message = enqueue(session, "broadcast", text, reachable, created_by=actor,
                              reference=target)
            repo.audit(session, actor, "broadcast_queued", "ok", subject=f"message:{message.id}",
                       detail={"to": target, "recipients": len(reachable)})
            message_id = message.id
        click.echo(f"broadcast {message_id} queued for {len(reachable)} recipient(s)")
        if wait:
            _watch(factory, message_id, len(reachable))


def _watch(factory, message_id: int, total: int) -> None:
    from datetime import UTC, datetime

    from outbox import store

    with factory() as session:
        if store.live_workers(session, datetime.now(UTC)) == 0:
            status("No outbox worker is running: start `prokus run` (the bot sends from the "
                   "outbox) or `prokus worker`; see progress with `prokus broadcast status "
                   f"{message_id}`.")
            return
    with click.progressbar(length=total, label="Sending", file=sys.stderr) as bar:
        done = 0
        while done < total:
            time.sleep(0.5)
            with factory() as session:
                progress = store.progress(session, message_id)
            bar.update(progress.done - done)
            done = progress.done
    _print_progress(progress)


def _print_progress(progress) -> None:
    order = ("sent", "blocked", "failed", "uncertain", "expired", "cancelled", "pending",
             "claimed", "sending")
    click.echo(", ".join(f"{s} {progress.states[s]}" for s in order if progress.states.get(s))
               + f" (of {progress.total})")
    for reason, count in sorted(progress.reasons.items(), key=lambda r: -r[1]):
        click.echo(f"  {count} x {reason}")


@broadcast.command("status")
@click.argument("message_id", type=DB_ID)
@pass_settings
def broadcast_status(settings: Settings, message_id: int) -> None:
    """Progress and final report of broadcast MESSAGE_ID, with uncertain recipients."""
    from sqlalchemy import select

    from db.models import OutboxItem, OutboxMessage
    from outbox import store

    with sessions(settings) as factory, factory() as session:
        message = session.get(OutboxMessage, message_id)
        if message is None:
            raise click.ClickException(f"no message {message_id}")
        progress = store.progress(session, message_id)
        uncertain = session.scalars(select(OutboxItem.user_id).where(
            OutboxItem.message_id == message_id, OutboxItem.state == store.UNCERTAIN)).all()
    click.echo(f"message {message_id} ({message.kind}, {message.reference or '-'}), queued by "
               f"{message.created_by} at {message.created_at:%Y-%m-%d %H:%M} UTC")
    _print_progress(progress)
    if uncertain:
        click.echo("uncertain (may have been delivered; not resent): users "
                   + ", ".join(map(str, uncertain)))
    if not progress.finished:
        click.echo("still sending")


# ---------------------------------------------------------------------- worker
@click.command("worker")
@click.option("--until-idle", is_flag=True, help="Stop when nothing is due (for scripts).")
@pass_settings
def worker(settings: Settings, until_idle: bool) -> None:
    """Send from the outbox on its own (scale-out); `prokus run` already runs one inside."""
    from bot.outbox_runner import run_worker

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await run_worker(settings, stop, until_idle=until_idle)

    from sqlalchemy.exc import OperationalError, ProgrammingError

    try:
        sent = asyncio.run(main())
    except RuntimeError as exc:
        raise _error(exc) from exc
    except (OperationalError, ProgrammingError) as exc:
        raise click.ClickException(f"Cannot use the database: {exc.orig} "
                                   "(run `prokus db upgrade`?)") from exc
    status(f"outbox worker stopped; {sent} message(s) sent")
