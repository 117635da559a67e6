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
from domain import regions

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
              help="Kode wilayah of the area, dotted or digits (e.g. 3201 or 73.71), checked "
                   "against the regions table once loaded; sets WIB/WITA/WIT.")
@click.option("--operator", default=None, help="Your name for the audit log.")
@pass_settings
def mentors_add(settings: Settings, telegram_id: str, name: str, phone: str, region: str,
                operator: str | None) -> None:
    """Give a Telegram account the mentor role (a disabled mentor becomes active again)."""
    from db import mentoring, repo

    try:
        fields = mentoring.check_mentor(telegram_id, name, phone, region)
    except mentoring.MentoringError as exc:
        raise click.BadParameter(str(exc), param_hint=f"--{exc.code.replace('_', '-')}") \
            from exc
    try:
        with sessions(settings) as factory, factory.begin() as session:
            mentor = mentoring.add_mentor(session, fields.telegram_id, fields.name,
                                          fields.phone, fields.region)
            repo.audit(session, operator_name(operator), "mentor_add", "ok",
                       subject=f"mentor:{mentor.id}", detail={"region": fields.region})
            mentor_id = mentor.id
    except mentoring.MentoringError as exc:
        if exc.code == "region":  # a code the loaded regions table does not have
            raise click.BadParameter(str(exc), param_hint="--region") from exc
        raise _error(exc) from exc
    click.echo(f"mentor {mentor_id}: {fields.name} ({regions.zone_name(fields.region)}); "
               "their /jadwal_baru, /peserta and /kirim now work in Telegram")


@mentors.command("assign")
@click.argument("mentor_id", type=DB_ID)
@click.argument("number")
@click.option("--operator", default=None, help="Your name for the audit log.")
@pass_settings
def mentors_assign(settings: Settings, mentor_id: int, number: str,
                   operator: str | None) -> None:
    """Assign registration NUMBER (accepted) to MENTOR_ID (active); the mentee also gets
    the reminders of the mentor's coming sessions."""
    from db import mentoring, repo

    number = number.strip().upper()
    try:
        with sessions(settings) as factory, factory.begin() as session:
            done = mentoring.assign_with_reminders(session, mentor_id, number)
            repo.audit(session, operator_name(operator), "mentor_assign", "ok", subject=number,
                       detail={"mentor": mentor_id, "previous": done.previous})
            previous, added = done.previous, done.reminders_added
    except mentoring.MentoringError as exc:
        raise _error(exc) from exc
    moved = f" (was mentor {previous})" if previous else ""
    click.echo(f"{number} -> mentor {mentor_id}{moved}; {added} reminder(s) added")


@mentors.command("disable")
@click.argument("mentor_id", type=DB_ID)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--operator", default=None, help="Your name for the audit log.")
@pass_settings
def mentors_disable(settings: Settings, mentor_id: int, yes: bool,
                    operator: str | None) -> None:
    """Disable MENTOR_ID: the account loses the mentor role (its mentor commands stop), the
    mentor's coming sessions are cancelled (mentees are told) and the mentees become
    unassigned, waiting for a new mentor (`prokus mentors assign`). A disabled mentor gets
    no new mentees; `prokus mentors add` with the same Telegram id enables them again."""
    from db import mentoring, repo

    actor = operator_name(operator)
    if not yes:
        click.confirm(f"Disable mentor {mentor_id}? Their mentees become unassigned and "
                      "their coming sessions are cancelled.", abort=True)
    try:
        with sessions(settings) as factory, factory.begin() as session:
            done = mentoring.disable_mentor(session, mentor_id, actor)
            repo.audit(session, actor, "mentor_disable", "ok", subject=f"mentor:{mentor_id}",
                       detail={"unassigned": len(done.unassigned),
                               "sessions_cancelled": done.sessions_cancelled})
            name = done.mentor.nama
    except mentoring.MentoringError as exc:
        raise _error(exc) from exc
    click.echo(f"mentor {mentor_id} ({name}) disabled; {len(done.unassigned)} mentee(s) "
               f"unassigned, {done.sessions_cancelled} coming session(s) cancelled")
    for number in done.unassigned:
        click.echo(f"  {number} needs a new mentor")


@mentors.command("list")
@pass_settings
def mentors_list(settings: Settings) -> None:
    """List mentors with their region and number of mentees."""
    from db import mentoring

    with sessions(settings) as factory, factory() as session:
        rows = mentoring.mentors_with_counts(session)
        active = {m.id: mentoring.is_active(session, m) for m, _, _ in rows}
    if not rows:
        status("No mentors yet: add one with `prokus mentors add`.")
        return
    click.echo(f"{'id':>4}  {'telegram':<12}  {'region':<10}  {'zone':<4}  {'mentees':>7}  name")
    for mentor, telegram_id, count in rows:
        off = "" if active[mentor.id] else "  (disabled)"
        click.echo(f"{mentor.id:>4}  {telegram_id:<12}  {mentor.kode_wilayah:<10}  "
                   f"{regions.zone_name(mentor.kode_wilayah):<4}  {count:>7}  {mentor.nama}"
                   f"{off}")


# ---------------------------------------------------------------------- broadcast
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
@click.option("--paid", is_flag=True,
              help="A paid broadcast: Telegram's allow_paid_broadcast, faster than the free "
                   "limit (~30/s), 0.1 Telegram Star per message above it, paid from the "
                   "bot's Stars balance. The preview shows the estimated cost.")
@click.option("--rate", type=click.FloatRange(30, 1000, min_open=True), default=None,
              help="With --paid: messages per second, above 30 and at most 1000 (default "
                   "1000). A 429 from Telegram slows it down, then it climbs back.")
@pass_settings
def broadcast_send(settings: Settings, target: str, text: str, yes: bool, wait: bool,
                   operator: str | None, paid: bool, rate: float | None) -> None:
    """Preview, confirm and queue a broadcast; the outbox worker sends it at the configured
    rate (OUTBOX_RATE, default 30/s), or with --paid up to 1,000/s, and never twice to
    anyone."""
    from db import broadcasts, mentoring, repo

    try:
        text = broadcasts.clean_text(text)
    except broadcasts.BroadcastError as exc:
        raise click.BadParameter(f"1-{broadcasts.TEXT_MAX} characters",
                                 param_hint="--text") from exc
    if rate is not None and not paid:
        raise click.BadParameter("--rate is for paid broadcasts: add --paid (without it "
                                 "the free limit, OUTBOX_RATE, holds)", param_hint="--rate")
    if paid:
        rate = broadcasts.PAID_RATE_MAX if rate is None else rate
    actor = operator_name(operator)
    with sessions(settings) as factory:
        try:
            with factory() as session:
                found = broadcasts.recipients(session, target)
        except broadcasts.BroadcastError as exc:
            raise click.BadParameter(str(exc), param_hint="--to") from exc
        except mentoring.MentoringError as exc:
            raise _error(exc) from exc
        click.echo(f"To: {found.audience.description}: {len(found.reachable)} recipient(s)"
                   + _skipped(found))
        click.echo("Text:\n" + "\n".join(f"  | {line}" for line in text.splitlines()))
        if not found.reachable:
            raise click.ClickException("nobody to send to")
        if paid:
            estimate = broadcasts.PaidEstimate(len(found.reachable), rate)
            click.echo(_paid_preview(estimate, settings.telegram_max_rate))
        else:
            click.echo(f"Mode: free, at most {settings.telegram_max_rate:g} messages/s "
                       f"(about {_duration(len(found.reachable), settings.telegram_max_rate)})")
        if not yes:
            prompt = (f"Send as a PAID broadcast (about {estimate.stars:g} Stars)?" if paid
                      else "Send?")
            click.confirm(prompt, abort=True)
        try:
            with factory.begin() as session:
                message, found = broadcasts.queue(session, target, text, actor, paid=paid,
                                                  rate=rate)
                detail = {"to": found.audience.target, "recipients": len(found.reachable)}
                if paid:
                    detail |= {"paid": True, "rate": rate,
                               "stars_estimate": broadcasts.PaidEstimate(
                                   len(found.reachable), rate).stars}
                repo.audit(session, actor, "broadcast_queued", "ok",
                           subject=f"message:{message.id}", detail=detail)
                message_id = message.id
        except (broadcasts.BroadcastError, mentoring.MentoringError) as exc:
            raise _error(exc) from exc
        click.echo(f"broadcast {message_id} queued for {len(found.reachable)} recipient(s)")
        if wait:
            _watch(factory, message_id, len(found.reachable))


def _duration(count: int, rate: float) -> str:
    from db.broadcasts import duration_text

    return duration_text(count / rate)


def _paid_preview(estimate, free_rate: float) -> str:
    """The cost and duration of a paid broadcast, with the formula."""
    from db.broadcasts import duration_text

    return "\n".join([
        f"Mode: PAID broadcast (allow_paid_broadcast) at up to {estimate.rate:g} messages/s",
        f"Estimated duration: {duration_text(estimate.seconds)} (free at "
        f"{free_rate:g}/s: {duration_text(estimate.recipients / free_rate)})",
        f"Estimated cost: {estimate.stars:g} Telegram Stars = 0.1 x messages above the "
        f"free limit = 0.1 x {estimate.recipients} x (1 - {estimate.free_rate:g}/"
        f"{estimate.rate:g}); at most {estimate.stars_max:g} Stars if Telegram charges "
        "every flagged message. Paid from the bot's Stars balance.",
    ])


def _skipped(found) -> str:
    """" (2 skipped: 1 blocked the bot or inactive, 1 not on Telegram)" and registrations
    without a chat account, or nothing."""
    parts = []
    if found.skipped:
        reasons = [f"{n} {why}" for n, why in ((found.inactive, "blocked the bot or inactive"),
                                              (found.other_channel, "not on Telegram")) if n]
        parts.append(f" ({found.skipped} skipped: {', '.join(reasons)})")
    if found.audience.without_chat:
        parts.append(f"; {found.audience.without_chat} registration(s) without a chat "
                     "account")
    return "".join(parts)


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
    with factory() as session:
        _print_rate(session, message_id)


def _print_rate(session, message_id: int) -> None:
    """The rate achieved: sent messages from the first to the last send."""
    from outbox import store

    achieved = store.achieved(session, message_id)
    if achieved.rate is not None:
        click.echo(f"rate achieved: {achieved.rate:.1f} messages/s ({achieved.sent} sent in "
                   f"{achieved.seconds:.1f} s)")


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
        achieved = store.achieved(session, message_id)
    mode = f", paid up to {message.paid_rate:g}/s" if message.paid else ""
    click.echo(f"message {message_id} ({message.kind}{mode}, {message.reference or '-'}), "
               f"queued by {message.created_by} at {message.created_at:%Y-%m-%d %H:%M} UTC")
    _print_progress(progress)
    if achieved.rate is not None:
        click.echo(f"rate achieved: {achieved.rate:.1f} messages/s ({achieved.sent} sent in "
                   f"{achieved.seconds:.1f} s)")
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
    from bot.cli_common import sessions
    from bot.outbox_runner import run_worker

    with sessions(settings, migrated=True):  # schema and data key checked first
        pass

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
