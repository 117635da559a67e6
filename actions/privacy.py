"""The user's own data (issue 16 item 4): /data_saya shows what is kept about this account
(masked), /hapus_data erases it after a confirmation; and the line that tells a user their
unfinished form was cleared by retention (db.retention), and the consent record.

/hapus_data asks first (buttons "Ya, hapus" / "Batal"); the answer counts for
CONFIRM_FOR. While a handoff is open it asks to end it first; a mentor's account is not
erased from the chat. Both commands are audited ("data_viewed", "data_erased"; db.privacy).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from actions.context import WIB, Context
from actions.types import Button, Reply
from db import privacy as store
from db import repo
from db.retention import CLEARED_KEY
from domain import nik as nik_rules
from domain.dates import MONTHS
from domain.registration import can_withdraw

MY_DATA, DELETE = "my_data", "delete_my_data"
CONFIRM, CANCEL = "delete_my_data_confirm", "delete_my_data_cancel"
# Intents the dialogue core routes here even while a form runs (the form waits).
DELETE_INTENTS = frozenset({DELETE, CONFIRM, CANCEL})
ASKED_KEY = "erase_asked"  # state: when /hapus_data asked for confirmation
CONFIRM_FOR = timedelta(minutes=15)
# Typed words understood without the NLU (after lower-casing and single spaces).
MY_DATA_WORDS = {"data saya", "lihat data saya", "data pribadi saya", "cek data saya"}
DELETE_WORDS = {"hapus data", "hapus data saya", "hapus akun", "hapus akun saya",
                "hapus data pribadi saya"}
DEFAULT_FORM_DAYS = 7


def _when(moment: datetime) -> str:
    local = moment.astimezone(WIB)
    return f"{local.day} {MONTHS[local.month - 1]} {local.year} pukul {local:%H.%M} WIB"


def _day(moment: datetime) -> str:
    local = moment.astimezone(WIB)
    return f"{local.day} {MONTHS[local.month - 1]} {local.year}"


def _text(ctx: Context, key: str, fallback: str, **values: object) -> str:
    return ctx.texts(key, **values) if key in ctx.texts else fallback


# ---------------------------------------------------------------------- retention notice
def cleared_notice(ctx: Context) -> Reply | None:
    """The line saying (once) that retention cleared an unfinished form, else None; the core
    puts it before the turn's replies."""
    cleared = ctx.state.pop(CLEARED_KEY, None)
    if cleared is None:
        return None
    if isinstance(cleared, dict):
        name, days = str(cleared.get("form") or ""), cleared.get("days")
    else:
        name, days = str(cleared), None
    form = _text(ctx, f"form_name/{name}", ctx.texts("privacy_form_cleared/unnamed"))
    return Reply(ctx.texts("privacy_form_cleared", form=form,
                           days=days if isinstance(days, int) else DEFAULT_FORM_DAYS))


# ---------------------------------------------------------------------- consent
def form_position(state: dict[str, Any]) -> tuple[str, str] | None:
    form = state.get("form")
    if not isinstance(form, dict):
        return None
    return str(form.get("name") or ""), str(form.get("step") or "")


def note_consent(ctx: Context, before: tuple[str, str] | None) -> None:
    """Record the consent when this turn took a form past its consent step with a yes."""
    after = form_position(ctx.state)
    if (before is None or after is None or before[1] != "consent" or after[0] != before[0]
            or after[1] == "consent" or ctx.user is None or ctx.user.id is None):
        return
    store.record_consent(ctx.session, ctx.user, before[0], ctx.now)


# ---------------------------------------------------------------------- /data_saya
def _purpose(ctx: Context, purpose: str | None) -> str:
    return _text(ctx, f"privacy_purpose/{purpose}", ctx.texts("privacy_purpose/other"))


def my_data(ctx: Context) -> None:
    """Show what is kept about this account, masked."""
    data = store.own_data(ctx.session, ctx.user)
    lines = [ctx.texts("privacy_my_data_title")]
    if data.registrations:
        lines.append(ctx.texts("privacy_my_data_registrations"))
        for r in data.registrations:
            status = _text(ctx, f"status/{r.status}", r.status)
            lines.append(ctx.texts("privacy_my_data_registration", number=r.number,
                                   status=status, nik=r.nik, name=r.name, phone=r.phone,
                                   date=_day(r.created_at)))
            if r.mentor:
                lines.append(ctx.texts("privacy_my_data_mentor", mentor=r.mentor))
    else:
        lines.append(ctx.texts("privacy_my_data_no_registration"))
    if data.consent_at is not None:
        lines.append(ctx.texts("privacy_my_data_consent", when=_when(data.consent_at),
                               purpose=_purpose(ctx, data.consent_for)))
    else:
        lines.append(ctx.texts("privacy_my_data_no_consent"))
    position = form_position(ctx.state)
    if position is not None:
        name = _text(ctx, f"form_name/{position[0]}", position[0])
        nik = ((ctx.state.get("form") or {}).get("values") or {}).get("nik")
        detail = (" " + ctx.texts("privacy_my_data_form_nik", nik=nik_rules.mask(nik))
                  if isinstance(nik, str) and len(nik) == 16 else "")
        lines.append(ctx.texts("privacy_my_data_form", form=name, detail=detail))
    else:
        lines.append(ctx.texts("privacy_my_data_no_form"))
    if data.handoff_tickets:
        lines.append(ctx.texts("privacy_my_data_handoff", count=data.handoff_tickets))
    if data.is_mentor:
        lines.append(ctx.texts("privacy_my_data_mentor_account"))
    lines.append(ctx.texts("privacy_my_data_footer"))
    ctx.replies.append(Reply("\n".join(lines), ctx.main_menu()))
    repo.audit(ctx.session, f"user:{ctx.user.id}", "data_viewed", "ok",
               detail={"registrations": len(data.registrations),
                       "form": position[0] if position else None}, at=ctx.now)


# ---------------------------------------------------------------------- /hapus_data
def _refused(ctx: Context) -> bool:
    """Say why the account cannot be erased now (an open handoff, a mentor's account)."""
    if store.open_handoff(ctx.session, ctx.user.id):
        ctx.say("privacy_delete_handoff_open")
        return True
    if store.is_mentor(ctx.session, ctx.user.id):
        ctx.say("privacy_delete_mentor", buttons=ctx.main_menu())
        return True
    return False


def delete_my_data(ctx: Context) -> None:
    """Ask for confirmation before erasing this account's data."""
    if _refused(ctx):
        return
    running = [r.number for r in store.registration_store.for_user(ctx.session, ctx.user.id)
               if can_withdraw(r.status)]
    kept = bool(store.registration_store.for_user(ctx.session, ctx.user.id))
    lines = [ctx.texts("privacy_delete_ask")]
    if running:
        lines.append(ctx.texts("privacy_delete_ask_withdraw", numbers=", ".join(running)))
    if kept:
        lines.append(ctx.texts("privacy_delete_ask_keep"))
    ctx.state[ASKED_KEY] = ctx.now.isoformat()
    ctx.replies.append(Reply("\n".join(lines), (
        Button(ctx.texts("privacy_delete_yes"), f"/{CONFIRM}"),
        Button(ctx.texts("privacy_delete_no"), f"/{CANCEL}"))))


def _asked_recently(ctx: Context) -> bool:
    asked = ctx.state.pop(ASKED_KEY, None)
    try:
        return asked is not None and ctx.now - datetime.fromisoformat(asked) <= CONFIRM_FOR
    except (TypeError, ValueError):
        return False


def confirm(ctx: Context) -> None:
    """Erase the account's data (after "Ya, hapus")."""
    if not _asked_recently(ctx):
        ctx.say("privacy_delete_expired", buttons=ctx.main_menu())
        return
    if _refused(ctx):
        return
    done = store.erase(ctx.session, ctx.user, ctx.now)
    ctx.memo.pop("active_registrations", None)
    ctx.memo["erased"] = True
    ctx.state.clear()
    lines = [ctx.texts("privacy_delete_done")]
    if done.withdrawn:
        lines.append(ctx.texts("privacy_delete_done_withdrawn",
                               numbers=", ".join(done.withdrawn)))
    if done.unlinked:
        lines.append(ctx.texts("privacy_delete_done_kept"))
    ctx.replies.append(Reply("\n".join(lines), ctx.main_menu()))


def cancel(ctx: Context) -> None:
    """Keep everything (after "Batal")."""
    ctx.state.pop(ASKED_KEY, None)
    ctx.say("privacy_delete_cancelled", buttons=ctx.main_menu())


def after_turn(ctx: Context) -> None:
    """After an erasure, keep nothing of this turn in the state but the offered buttons."""
    if ctx.memo.get("erased"):
        buttons = ctx.state.get("buttons")
        ctx.state.clear()
        if buttons:
            ctx.state["buttons"] = buttons


def keyword(text: str) -> str | None:
    """The intent of "data saya" / "hapus data saya" typed as words, else None."""
    plain = " ".join(text.casefold().replace("?", " ").replace(".", " ").split())
    if plain in MY_DATA_WORDS:
        return MY_DATA
    if plain in DELETE_WORDS:
        return DELETE
    return None


HANDLERS = {MY_DATA: my_data, DELETE: delete_my_data, CONFIRM: confirm, CANCEL: cancel}
