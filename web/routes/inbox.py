"""/inbox: conversations handed to a person (issue 14). The list of open tickets, oldest
first, with how long each user has waited; one ticket's conversation (masked by the chat
side before it was stored), the user's registration summary, and the steps: take, reply,
close with an outcome.

- Every role uses the inbox; a verifier with a region sees only tickets whose kode_wilayah
  starts with it (in the list, the ticket page, every step: 404 outside it).
- The steps call db.handoff_inbox (take is a compare-and-set: of two operators, one gets
  the ticket, the other a message); each is audited (`handoff_take`, `handoff_reply`,
  `handoff_close`, refusals with their reason as outcome) with the operator's name, in the
  transaction of the step. Opening a ticket is audited too (`handoff_view`): it shows a
  person's messages. The text of an answer is not copied into the audit log.
- New messages and delivery states appear without reloading: the conversation is an htmx
  partial polled every 2 seconds (`/inbox/{id}/pesan`), the list every 10 seconds.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from db import handoff_inbox as inbox
from db import registration_queue as queue
from web.deps import (
    audit,
    current_operator,
    db,
    flash,
    form,
    now,
    redirect,
    render,
    require_role,
)
from web.routes.registrations import STATUS_LABELS as REGISTRATION_LABELS
from web.routes.registrations import sector_label

VIEWS = {"semua": "Semua terbuka", "saya": "Tiket saya", "belum": "Belum diambil",
         "selesai": "Termasuk yang selesai"}
POLL_SECONDS = 2
ROLES = ("verifier", "coordinator", "supervisor")   # every role (as in web.nav)


def _scope(request: Request) -> str | None:
    """A verifier's region (kode wilayah digits); other roles see every region."""
    operator = current_operator(request)
    return operator.region if operator.role == "verifier" else None


def _ticket_id(request: Request) -> int:
    raw = str(request.path_params["ticket_id"])
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        raise HTTPException(404)
    return int(raw)


def refusal(error: inbox.InboxError, ticket_id: int) -> str:
    """Why a step was not done, in the operator's words."""
    who = error.holder or "petugas lain"
    return {
        "not_found": f"Tiket #{ticket_id} tidak ditemukan di wilayah Anda.",
        "taken": f"Tiket #{ticket_id} sudah diambil {who}. Tindakan Anda tidak dijalankan.",
        "not_taken": f"Ambil dulu tiket #{ticket_id} sebelum membalas atau menutupnya.",
        "closed": f"Tiket #{ticket_id} sudah ditutup.",
        "empty": "Balasan kosong tidak dikirim.",
        "too_long": f"Balasan paling banyak {inbox.REPLY_MAX:,} karakter".replace(",", ".")
                    + "; pecah menjadi beberapa balasan.",
        "bad_outcome": "Pilih hasil percakapan dari daftar.",
        "mine": f"Tiket #{ticket_id} sudah Anda tangani.",
    }.get(error.code, f"Tiket #{ticket_id}: tindakan tidak bisa dijalankan.")


# ---------------------------------------------------------------------- the list
@require_role(*ROLES)
def inbox_page(request: Request) -> Response:
    """Open tickets, oldest first; an htmx request for `#daftar-tiket` gets the table."""
    operator = current_operator(request)
    params = request.query_params
    view = params.get("lihat", "semua")
    view = view if view in VIEWS else "semua"
    typed = str(params.get("wilayah", "")).strip()[:20]
    region = queue.digits(typed) if typed else None
    error = "Kode wilayah berupa angka, contoh 32.01 atau 3201." if typed and not region else None
    try:
        page_no = max(1, min(int(params.get("hal", "1")), 10_000))
    except ValueError:
        page_no = 1
    found = inbox.list_tickets(
        db(request), mine=operator.username if view == "saya" else None,
        unassigned=view == "belum", region_prefix=region,
        include_closed=view == "selesai", page=page_no, scope=_scope(request))
    query = {k: v for k, v in {"lihat": view if view != "semua" else "",
                               "wilayah": typed if region else ""}.items() if v}

    def url(**changes: Any) -> str:
        merged = {**query, **{k: v for k, v in changes.items() if v}}
        return "/inbox" + (f"?{urlencode(merged)}" if merged else "")

    context = {"page": found, "view": view, "views": VIEWS, "wilayah": typed if region else "",
               "wilayah_error": error, "url": url, "query": urlencode(query),
               "moment": now(request), "waited": inbox.waited,
               "status_labels": inbox.STATUS_LABELS, "outcomes": inbox.OUTCOMES,
               "scope": _scope(request)}
    partial = (request.headers.get("hx-request") == "true"
               and request.headers.get("hx-target") == "daftar-tiket")
    return render(request, "inbox_list.html" if partial else "inbox.html", context)


# ---------------------------------------------------------------------- one ticket
def _view(request: Request, ticket_id: int) -> inbox.TicketView:
    try:
        return inbox.ticket_view(db(request), ticket_id, _scope(request))
    except inbox.InboxError:
        raise HTTPException(404) from None


def _conversation_context(request: Request, view: inbox.TicketView) -> dict[str, Any]:
    return {"t": view.ticket, "view": view, "moment": now(request), "waited": inbox.waited,
            "topic_label": inbox.topic_label,
            "status_labels": inbox.STATUS_LABELS, "outcomes": inbox.OUTCOMES,
            "poll": POLL_SECONDS}


@require_role(*ROLES)
def ticket_page(request: Request) -> Response:
    """One ticket: the conversation (polled), the registration summary and the steps."""
    operator = current_operator(request)
    ticket_id = _ticket_id(request)
    view = _view(request, ticket_id)
    session = db(request)
    audit(request, session, "handoff_view", "ok", subject=f"handoff:{ticket_id}")
    session.commit()
    ticket = view.ticket
    holder = ticket.assigned_to == operator.username
    return render(request, "inbox_ticket.html", {
        **_conversation_context(request, view),
        "holder": holder,
        "can_take": ticket.status == inbox.WAITING,
        "can_reply": ticket.status == inbox.ASSIGNED and holder,
        "can_close": (ticket.status == inbox.WAITING
                      or (ticket.status == inbox.ASSIGNED
                          and (holder or operator.has_role("supervisor")))),
        "reply_max": inbox.REPLY_MAX, "reg": view.registration,
        "reg_labels": REGISTRATION_LABELS, "sector_label": sector_label,
        "back": _back(request.query_params.get("kembali")),
    })


@require_role(*ROLES)
def conversation_partial(request: Request) -> Response:
    """The conversation alone, for the page's polling (not audited: the page was)."""
    view = _view(request, _ticket_id(request))
    return render(request, "inbox_conversation.html", _conversation_context(request, view))


def _back(text: str | None) -> str:
    """The list's query string to go back to (known keys only)."""
    return urlencode([(k, v[:20]) for k, v in parse_qsl(text or "")
                      if k in ("lihat", "wilayah", "hal")])


# ---------------------------------------------------------------------- steps
def _step(request: Request, action: str, run, detail: dict[str, Any] | None = None
          ) -> tuple[bool, str]:
    """Run one step in this request's session with its audit row; a refusal is rolled back
    and audited with its reason. Returns (done, why not)."""
    ticket_id = _ticket_id(request)
    session = db(request)
    operator = current_operator(request)
    subject = f"handoff:{ticket_id}"
    try:
        extra = run(session, ticket_id, operator.username, now(request)) or {}
        audit(request, session, action, "ok", subject=subject, detail={**(detail or {}),
                                                                         **extra})
        session.commit()
        return True, ""
    except inbox.InboxError as exc:
        session.rollback()
        if exc.code == "not_found":
            raise HTTPException(404) from None
        audit(request, session, action, exc.code, subject=subject,
              detail={**(detail or {}), "holder": exc.holder})
        session.commit()
        return False, refusal(exc, ticket_id)


def _back_to(request: Request, data=None) -> Response:
    data = data if data is not None else (getattr(request.state, "form", None) or {})
    back = _back(str(data.get("kembali", "")))
    return redirect(f"/inbox/{_ticket_id(request)}" + (f"?kembali={back}" if back else ""))


@require_role(*ROLES)
def take_ticket(request: Request) -> Response:
    """Take a waiting ticket (one operator wins; the others are told who has it)."""
    scope = _scope(request)

    def run(session, ticket_id, operator, moment):
        inbox.take(session, ticket_id, operator, moment, scope=scope)

    done, why = _step(request, "handoff_take", run)
    flash(request, "Tiket sekarang Anda tangani. Balasan Anda dikirim ke pengguna lewat "
                   "Telegram." if done else why, "ok" if done else "error")
    return _back_to(request)  # an htmx POST may come without a form


@require_role(*ROLES)
def reply_ticket(request: Request) -> Response:
    """Answer the user of a ticket one holds (queued in the outbox, plain text)."""
    data = form(request)
    text = str(data.get("balasan", ""))
    scope = _scope(request)

    def run(session, ticket_id, operator, moment):
        stored = inbox.reply(session, ticket_id, operator, text, moment, scope=scope)
        parts = len(inbox.telegram_parts(inbox.texts()("handoff_operator_reply",
                                                       text=stored.text).rstrip()))
        return {"chars": len(stored.text), "parts": parts, "message": stored.id}

    done, why = _step(request, "handoff_reply", run, {"chars": len(text.strip())})
    if done:
        flash(request, "Balasan masuk antrean kirim; status kirimnya tampil di percakapan.")
    else:
        flash(request, why, "error")
    return _back_to(request, data)


@require_role(*ROLES)
def close_ticket(request: Request) -> Response:
    """Close a ticket with an outcome; the user is told they are back with the assistant."""
    data = form(request)
    outcome = str(data.get("hasil", ""))
    scope = _scope(request)
    override = current_operator(request).has_role("supervisor")

    def run(session, ticket_id, operator, moment):
        inbox.close(session, ticket_id, operator, outcome, moment, scope=scope,
                    override=override)

    done, why = _step(request, "handoff_close", run, {"outcome": outcome[:32]})
    if done:
        flash(request, f"Tiket #{_ticket_id(request)} ditutup "
                       f"({inbox.OUTCOMES[outcome]}). Pengguna diberi tahu bahwa percakapan "
                       "kembali ke asisten.")
    else:
        flash(request, why, "error")
    return _back_to(request, data)


routes = [
    Route("/inbox", inbox_page, methods=["GET"]),
    Route("/inbox/{ticket_id}", ticket_page, methods=["GET"]),
    Route("/inbox/{ticket_id}/pesan", conversation_partial, methods=["GET"]),
    Route("/inbox/{ticket_id}/ambil", take_ticket, methods=["POST"]),
    Route("/inbox/{ticket_id}/balas", reply_ticket, methods=["POST"]),
    Route("/inbox/{ticket_id}/tutup", close_ticket, methods=["POST"]),
]
