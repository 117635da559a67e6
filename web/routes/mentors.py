"""/mentors: coordinators and supervisors list mentors (region, mentees, coming sessions),
add and disable them, assign accepted registrations (mentors of the same region suggested
first) and see a mentor's coming sessions. The same functions as `prokus mentors`; audit
actions `mentor_add`, `mentor_disable` and `mentor_assign`."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from db import mentoring
from domain import regions
from domain.numbers import read_int
from web.deps import audit, current_operator, db, flash, form, now, redirect, render, require_role

ROLES = ("coordinator", "supervisor")
UNASSIGNED_PAGE = 50
DB_ID_MAX = 2**31 - 1

ERRORS = {  # MentoringError.code -> what the page says
    "telegram_id": "ID Telegram berupa angka (maks. 15 digit). Pendamping bisa melihatnya "
                   "lewat bot @userinfobot.",
    "name": f"Isi nama lengkap (maks. {mentoring.NAME_MAX} karakter).",
    "phone": "Nomor HP tidak valid. Contoh: 081234567890 atau +6281234567890.",
    "region": "Kode wilayah tidak dikenal. Contoh: 32 (provinsi), 32.01 (kabupaten/kota) "
              "atau 32.01.05 (kecamatan).",
    "exists": "Akun Telegram itu sudah menjadi pendamping aktif.",
    "no_mentor": "Pendamping itu tidak ditemukan.",
    "mentor_disabled": "Pendamping itu sudah nonaktif; pendamping nonaktif tidak menerima "
                       "peserta baru.",
    "already_disabled": "Pendamping itu sudah nonaktif.",
    "no_registration": "Nomor pendaftaran itu tidak ditemukan.",
    "not_accepted": "Hanya pendaftaran berstatus diterima yang bisa mendapat pendamping.",
    "already_assigned": "Peserta itu sudah didampingi pendamping tersebut.",
    "invalid": "Data tidak valid.",
}
FIELDS = ("telegram_id", "name", "phone", "region")


def _region_filter(raw: str | None) -> str | None:
    value = (raw or "").strip()
    return value.replace(".", "") if value and regions.valid_region(value) else None


def _page(request: Request, *, values: dict[str, str] | None = None,
          errors: dict[str, str] | None = None, status_code: int = 200) -> Response:
    session = db(request)
    moment = now(request)
    rows = mentoring.mentor_rows(session, moment)
    region = _region_filter(request.query_params.get("wilayah"))
    waiting, waiting_total = mentoring.unassigned(session, UNASSIGNED_PAGE, region)
    choices = []
    for registration in waiting:
        ranked = mentoring.suggest(rows, registration.kode_wilayah)
        near = [r for r in ranked
                if mentoring.region_match(r.mentor.kode_wilayah, registration.kode_wilayah)]
        far = [r for r in ranked if r not in near]
        choices.append((registration, near, far))
    return render(request, "mentors.html", {
        "rows": rows, "active_count": sum(1 for r in rows if r.active),
        "waiting": choices, "waiting_total": waiting_total, "region": region,
        "region_raw": request.query_params.get("wilayah", ""),
        "values": values or {}, "errors": errors or {}, "zone_name": regions.zone_name,
    }, status_code=status_code)


@require_role(*ROLES)
def mentors_page(request: Request) -> Response:
    """Mentors, the form to add one, and accepted registrations waiting for a mentor."""
    return _page(request)


@require_role(*ROLES)
def add_mentor(request: Request) -> Response:
    """Add a mentor (or make a disabled one active again); errors next to their field."""
    data = form(request)
    values = {key: str(data.get(key, "")) for key in FIELDS}
    session = db(request)
    try:
        fields = mentoring.check_mentor(values["telegram_id"], values["name"], values["phone"],
                                        values["region"])
        mentor = mentoring.add_mentor(session, fields.telegram_id, fields.name, fields.phone,
                                      fields.region)
    except mentoring.MentoringError as exc:
        session.rollback()
        field = exc.code if exc.code in FIELDS else "telegram_id"
        return _page(request, values=values, errors={field: ERRORS[exc.code]},
                     status_code=400)
    audit(request, session, "mentor_add", "ok", subject=f"mentor:{mentor.id}",
          detail={"region": fields.region})
    session.commit()
    flash(request, f"Pendamping {fields.name} ditambahkan ({regions.zone_name(fields.region)})."
                   " Menu pendamping (/jadwal_baru, /peserta, /kirim) kini aktif di Telegram.")
    return redirect("/mentors")


def _mentor_id(request: Request) -> int:
    value = read_int(str(request.path_params["mentor_id"]), 10, 1, DB_ID_MAX)
    if value is None:
        raise HTTPException(404)
    return value


@require_role(*ROLES)
def disable_mentor(request: Request) -> Response:
    """Disable a mentor: mentees unassigned, coming sessions cancelled (mentees told)."""
    mentor_id = _mentor_id(request)
    session = db(request)
    try:
        done = mentoring.disable_mentor(session, mentor_id, current_operator(request).actor,
                                        now(request))
    except mentoring.MentoringError as exc:
        session.rollback()
        flash(request, ERRORS[exc.code], "error")
        return redirect("/mentors")
    audit(request, session, "mentor_disable", "ok", subject=f"mentor:{mentor_id}",
          detail={"unassigned": len(done.unassigned),
                  "sessions_cancelled": done.sessions_cancelled})
    session.commit()
    flash(request, f"Pendamping {done.mentor.nama} dinonaktifkan. {len(done.unassigned)} "
                   f"peserta kini belum punya pendamping dan menunggu penugasan; "
                   f"{done.sessions_cancelled} pertemuan mendatang dibatalkan dan pesertanya "
                   "diberi tahu.")
    return redirect("/mentors")


@require_role(*ROLES)
def assign(request: Request) -> Response:
    """Assign an accepted registration to a mentor (or move it to another mentor)."""
    data = form(request)
    number = str(data.get("number", "")).strip().upper()[:32]
    mentor_id = read_int(str(data.get("mentor_id", "")).strip(), 10, 1, DB_ID_MAX)
    back = "/mentors"
    if str(data.get("back", "")) == "mentor" and mentor_id:
        back = f"/mentors/{mentor_id}"
    if not number or mentor_id is None:
        flash(request, "Pilih pendamping dan isi nomor pendaftaran.", "error")
        return redirect(back)
    session = db(request)
    try:
        done = mentoring.assign_with_reminders(session, mentor_id, number, now(request))
    except mentoring.MentoringError as exc:
        session.rollback()
        flash(request, ERRORS[exc.code], "error")
        return redirect(back)
    audit(request, session, "mentor_assign", "ok", subject=done.registration.number,
          detail={"mentor": mentor_id, "previous": done.previous})
    session.commit()
    moved = " (dipindahkan dari pendamping sebelumnya)" if done.previous else ""
    flash(request, f"{done.registration.number} ditugaskan ke {done.mentor.nama}{moved}; "
                   f"{done.reminders_added} pengingat pertemuan ditambahkan.")
    return redirect(back)


@require_role(*ROLES)
def mentor_page(request: Request) -> Response:
    """One mentor: details, coming sessions and mentees."""
    session = db(request)
    moment = now(request)
    mentor_id = _mentor_id(request)
    row = next((r for r in mentoring.mentor_rows(session, moment) if r.mentor.id == mentor_id),
               None)
    if row is None:
        raise HTTPException(404)
    return render(request, "mentors_detail.html", {
        "row": row, "mentor": row.mentor, "zone": regions.zone_name(row.mentor.kode_wilayah),
        "sessions": mentoring.upcoming(session, mentor_id, moment, limit=50),
        "mentees": mentoring.mentees(session, mentor_id),
    })


routes = [
    Route("/mentors", mentors_page, methods=["GET"]),
    Route("/mentors", add_mentor, methods=["POST"]),
    Route("/mentors/assign", assign, methods=["POST"]),
    Route("/mentors/{mentor_id}", mentor_page, methods=["GET"]),
    Route("/mentors/{mentor_id}/disable", disable_mentor, methods=["POST"]),
]
