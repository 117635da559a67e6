"""/broadcasts: coordinators and supervisors compose a broadcast (audience: a mentor's
mentees, registrants by status, or a region), see who it reaches and who is skipped and
why, preview the text, confirm, then watch it go out on /broadcasts/{id} (the counts refresh
every 2 s through htmx) until the final report. The same functions as `prokus broadcast
send` (db.broadcasts); the outbox worker sends. Audit action `broadcast_queued`."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from sqlalchemy import select
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from db import broadcasts, mentoring
from db.models import Mentor, OutboxMessage
from domain import registration as rules
from domain.numbers import read_int
from outbox import store
from web.deps import (
    audit,
    csrf_token,
    current_operator,
    db,
    flash,
    form,
    now,
    redirect,
    render,
    require_role,
)

ROLES = ("coordinator", "supervisor")
RECENT = 20
STATUS_LABELS = {rules.SUBMITTED: "Diajukan", rules.VERIFIED: "Diverifikasi",
                 rules.ACCEPTED: "Diterima", rules.REJECTED: "Ditolak",
                 rules.WITHDRAWN: "Ditarik pemohon"}
ERRORS = {  # BroadcastError / MentoringError code -> what the composer says
    "text_empty": "Tulis isi pesan terlebih dahulu; pesan kosong tidak bisa dikirim.",
    "text_long": f"Pesan terlalu panjang: maksimal {broadcasts.TEXT_MAX:,} karakter "
                 "(batas satu pesan Telegram).".replace(",", "."),
    "target": "Pilih penerima: peserta dampingan seorang pendamping, pendaftar menurut "
              "status, atau satu wilayah.",
    "target_mentees": "Pilih pendamping yang pesertanya akan menerima pesan.",
    "target_registrants": "Pilih status pendaftaran.",
    "target_region": "Kode wilayah tidak dikenal. Contoh: 32 (provinsi), 32.01 "
                     "(kabupaten/kota) atau 32.01.05 (kecamatan).",
    "no_mentor": "Pendamping itu tidak ditemukan.",
    "nobody": "Tidak ada penerima yang bisa dihubungi untuk pilihan ini.",
    "changed": "Isi atau penerima berubah setelah pratinjau. Periksa pratinjau lagi lalu "
               "konfirmasi.",
    "paid_rate": "Kecepatan siaran berbayar: lebih dari 30 dan paling banyak 1.000 pesan "
                 "per detik.",
    "paid_consent": "Centang persetujuan biaya Telegram Stars untuk mengirim siaran "
                    "berbayar.",
}
FIELD_OF = {"text_empty": "text", "text_long": "text", "target": "audience",
            "target_mentees": "mentor_id", "target_registrants": "status",
            "target_region": "region", "no_mentor": "mentor_id", "nobody": "audience",
            "paid_rate": "rate"}
# Outcome (state) -> how the report names it; errors are shown as the worker wrote them.
OUTCOME_LABELS = {
    store.BLOCKED: "Memblokir bot atau akun tidak aktif",
    store.FAILED: "Gagal dikirim",
    store.UNCERTAIN: "Tidak pasti: mungkin sudah sampai, tidak dikirim ulang",
    store.EXPIRED: "Kedaluwarsa sebelum terkirim",
    store.CANCELLED: "Dibatalkan",
}


# ---------------------------------------------------------------------- helpers
def _target_of(data) -> str:
    """The db.broadcasts target the composer's fields name (the CLI's --to)."""
    audience = str(data.get("audience", ""))
    value = {"mentees": data.get("mentor_id", ""), "registrants": data.get("status", ""),
             "region": data.get("region", "")}.get(audience, "")
    return f"{audience}:{str(value).strip()}" if audience else ""


def _digest(request: Request, target: str, text: str, paid_rate: float | None = None) -> str:
    """Binds a confirmation to the previewed target, text and mode (and this session)."""
    key = csrf_token(request).encode("utf-8")
    mode = f"\0paid:{paid_rate:g}" if paid_rate is not None else ""
    return hmac.new(key, f"{target}\0{text}{mode}".encode(), hashlib.sha256).hexdigest()


def _paid_rate(values: dict[str, str]) -> float | None:
    """The composer's paid mode: None (free), or its rate; BroadcastError for a bad rate."""
    if values.get("paid") not in ("1", "on", "true"):
        return None
    raw = (values.get("rate") or "").strip().replace(".", "").replace(",", ".")
    try:
        rate = float(raw) if raw else broadcasts.PAID_RATE_MAX
    except ValueError:
        raise broadcasts.BroadcastError("rate", "paid_rate") from None
    return broadcasts.check_paid_rate(rate)


def _mentor_names(session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return dict(session.execute(select(Mentor.id, Mentor.nama).where(Mentor.id.in_(ids))).all())


def target_label(target: str | None, names: dict[int, str]) -> str:
    """The audience in words: "Peserta dampingan Andi", "Pendaftar berstatus Diterima"."""
    kind, _, value = (target or "").partition(":")
    if kind == "mentees" and value.isdigit():
        name = names.get(int(value))
        return f"Peserta dampingan {name}" if name else f"Peserta pendamping #{value}"
    if kind == "registrants":
        return f"Pendaftar berstatus {STATUS_LABELS.get(value, value)}"
    if kind == "region":
        from db.operators import dotted_region

        return f"Pendaftar aktif di wilayah {dotted_region(value) or value}"
    return target or "–"


@dataclass(frozen=True)
class Counts:
    """The four figures the progress page shows."""

    total: int
    queued: int       # pending, claimed or being sent
    sent: int
    failed: int       # blocked, failed, expired, cancelled
    uncertain: int
    finished: bool

    @property
    def done(self) -> int:
        return self.total - self.queued

    @classmethod
    def of(cls, progress: store.Progress) -> Counts:
        states = progress.states
        failed = sum(states.get(s, 0) for s in (store.BLOCKED, store.FAILED, store.EXPIRED,
                                                store.CANCELLED))
        return cls(progress.total, progress.total - progress.done, states.get(store.SENT, 0),
                   failed, states.get(store.UNCERTAIN, 0), progress.finished)


def _composer(request: Request, *, values: dict[str, str] | None = None,
              errors: dict[str, str] | None = None, status_code: int = 200) -> Response:
    session = db(request)
    moment = now(request)
    mentors = [r for r in mentoring.mentor_rows(session, moment) if r.active]
    messages = broadcasts.recent(session, RECENT)
    progress = store.progress_many(session, [m.id for m in messages])
    names = _mentor_names(session, {int(m.reference.split(":")[1]) for m in messages
                                    if m.reference and m.reference.startswith("mentees:")
                                    and m.reference.split(":")[1].isdigit()})
    recent = [(m, Counts.of(progress[m.id]), target_label(m.reference, names))
              for m in messages]
    return render(request, "broadcasts.html", {
        "mentors": mentors, "statuses": STATUS_LABELS, "recent": recent,
        "values": values or {"audience": "registrants", "status": rules.ACCEPTED},
        "errors": errors or {}, "text_max": broadcasts.TEXT_MAX,
    }, status_code=status_code)


def _values(data) -> dict[str, str]:
    return {key: str(data.get(key, "")) for key in ("audience", "mentor_id", "status", "region",
                                                     "text", "paid", "rate")}


def _error_page(request: Request, values: dict[str, str], code: str) -> Response:
    return _composer(request, values=values, status_code=400,
                     errors={FIELD_OF.get(code, "text"): ERRORS.get(code, ERRORS["target"])})


# ---------------------------------------------------------------------- pages
@require_role(*ROLES)
def composer(request: Request) -> Response:
    """The composer and the recent broadcasts."""
    return _composer(request)


@require_role(*ROLES)
def preview(request: Request) -> Response:
    """Check the text and the audience; show the recipients, the skipped ones and the text."""
    values = _values(form(request))
    session = db(request)
    try:
        text = broadcasts.clean_text(values["text"])
        paid_rate = _paid_rate(values)
        found = broadcasts.recipients(session, _target_of(values))
    except (broadcasts.BroadcastError, mentoring.MentoringError) as exc:
        return _error_page(request, values, exc.code)
    audience = found.audience
    names = {audience.mentor.id: audience.mentor.nama} if audience.mentor else {}
    estimate = (broadcasts.PaidEstimate(len(found.reachable), paid_rate)
                if paid_rate is not None else None)
    return render(request, "broadcasts_preview.html", {
        "found": found, "text": text, "target": audience.target,
        "label": target_label(audience.target, names), "values": values,
        "digest": _digest(request, audience.target, text, paid_rate),
        "workers": store.live_workers(session, now(request)),
        "paid_rate": paid_rate, "estimate": estimate,
        "duration": broadcasts.duration_text(
            estimate.seconds if estimate else len(found.reachable) / broadcasts.FREE_RATE),
        "free_duration": broadcasts.duration_text(len(found.reachable) / broadcasts.FREE_RATE),
    })


@require_role(*ROLES)
def confirm(request: Request) -> Response:
    """Queue the previewed broadcast (a second POST carrying the preview's digest)."""
    data = form(request)
    target = str(data.get("target", ""))
    text = str(data.get("text", "")).replace("\r\n", "\n").strip()  # as the preview had it
    values = _values(data)
    try:
        paid_rate = _paid_rate(values)
    except broadcasts.BroadcastError as exc:
        return _error_page(request, values, exc.code)
    if not hmac.compare_digest(str(data.get("digest", "")),
                               _digest(request, target, text, paid_rate)):
        return _error_page(request, values, "changed")
    if paid_rate is not None and str(data.get("paid_consent", "")) not in ("1", "on"):
        return _error_page(request, values, "paid_consent")
    session = db(request)
    operator = current_operator(request)
    twin = broadcasts.recent_duplicate(session, target, text, operator.actor)
    if twin is not None:
        flash(request, "Siaran yang sama baru saja Anda kirim; ini kemajuannya (tidak dikirim "
                       "dua kali).", "info")
        return redirect(f"/broadcasts/{twin.id}")
    try:
        message, found = broadcasts.queue(session, target, text, operator.actor,
                                          paid=paid_rate is not None, rate=paid_rate)
    except (broadcasts.BroadcastError, mentoring.MentoringError) as exc:
        session.rollback()
        return _error_page(request, values, exc.code)
    detail = {"to": found.audience.target, "recipients": len(found.reachable),
              "skipped": found.skipped, "without_chat": found.audience.without_chat}
    if paid_rate is not None:
        detail |= {"paid": True, "rate": paid_rate, "stars_estimate": broadcasts.PaidEstimate(
            len(found.reachable), paid_rate).stars}
    audit(request, session, "broadcast_queued", "ok", subject=f"message:{message.id}",
          detail=detail)
    session.commit()
    flash(request, f"Siaran #{message.id} masuk antrean untuk {len(found.reachable)} penerima.")
    return redirect(f"/broadcasts/{message.id}")


def _message(request: Request) -> OutboxMessage:
    message_id = read_int(str(request.path_params["message_id"]), 10, 1, broadcasts.DB_ID_MAX)
    message = broadcasts.get(db(request), message_id) if message_id else None
    if message is None:
        raise HTTPException(404)
    return message


def _progress_context(request: Request, message: OutboxMessage) -> dict[str, object]:
    session = db(request)
    counts = Counts.of(store.progress(session, message.id))
    # a blocked row's error only repeats its label; other errors are the worker's words
    outcomes = [(OUTCOME_LABELS.get(state, state), None if state == store.BLOCKED else error,
                 count) for state, error, count in store.outcomes(session, message.id)]
    achieved = store.achieved(session, message.id)
    return {"message": message, "counts": counts, "outcomes": outcomes,
            "workers": store.live_workers(session, now(request)),
            "rate_achieved": None if achieved.rate is None else round(achieved.rate, 1)}


@require_role(*ROLES)
def progress_page(request: Request) -> Response:
    """One broadcast: who it went to, its text, and its live progress or final report."""
    message = _message(request)
    session = db(request)
    ref = message.reference or ""
    names = (_mentor_names(session, {int(ref.split(":")[1])})
             if ref.startswith("mentees:") and ref.split(":")[1].isdigit() else {})
    return render(request, "broadcasts_progress.html", {
        **_progress_context(request, message), "label": target_label(message.reference, names),
    })


@require_role(*ROLES)
def progress_partial(request: Request) -> Response:
    """The counts alone, for htmx polling (stops polling once every recipient is final)."""
    message = _message(request)
    return render(request, "broadcasts_progress_partial.html",
                  _progress_context(request, message))


routes = [
    Route("/broadcasts", composer, methods=["GET"]),
    Route("/broadcasts/preview", preview, methods=["POST"]),
    Route("/broadcasts", confirm, methods=["POST"]),
    Route("/broadcasts/{message_id}", progress_page, methods=["GET"]),
    Route("/broadcasts/{message_id}/progress", progress_partial, methods=["GET"]),
]
