"""/registrations: the verification queue, one registration's detail, status changes (one
or in bulk) and the CSV export.

- The queue filters by status, region prefix, business field and WIB dates, finds one
  registration by its exact PRK number or exact NIK, pages 50 at a time (keyset) and
  counts per status; htmx swaps only the results (`#hasil`), plain GET forms and links
  work without JavaScript.
- A verifier with a region sees only registrations whose kode_wilayah starts with it, in
  every list, count, detail (404 otherwise), action and export.
- Status changes go through db.registrations.set_status, the function behind `prokus
  registrations set-status`: the same transitions, the applicant's notice in the outbox and
  the audit row in the same transaction, and a compare-and-set on the status the operator
  saw (a stale form is refused with a message, never applied on top of another change).
  Verifiers and supervisors may change a status; coordinators only read.
- The export (supervisors only) streams the filtered rows from a server-side cursor with
  NIK and phone masked, and is audited with its row count (`registrations_export`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from actions.responses import shared
from db import region_matching
from db import registration_queue as queue
from db import registrations as repo
from db.models import Kpm, Registration
from domain import eligibility
from domain import nik as nik_rules
from domain import registration as rules
from domain.names import same_person
from web.deps import (
    audit,
    client_ip,
    current_operator,
    db,
    flash,
    form,
    now,
    redirect,
    render,
    require_role,
    web_context,
)

ACTORS = ("verifier", "supervisor")       # who may change a status
BULK_MAX = 200                            # registrations in one bulk action
STATUS_LABELS = {rules.SUBMITTED: "Diajukan", rules.VERIFIED: "Diverifikasi",
                 rules.ACCEPTED: "Diterima", rules.REJECTED: "Ditolak",
                 rules.WITHDRAWN: "Ditarik pemohon"}
ACTION_LABELS = {rules.VERIFIED: "Verifikasi", rules.ACCEPTED: "Terima",
                 rules.REJECTED: "Tolak"}
QUERY_KEYS = ("status", "wilayah", "bidang", "dari", "sampai", "q", "urut")
SECTORS = (*eligibility.SECTORS, eligibility.REVIEW)
texts = shared  # the bot's Indonesian texts, loaded once


def sector_label(key: str) -> str:
    return texts()(f"sector/{key}") if f"sector/{key}" in texts() else key


# ---------------------------------------------------------------------- the queue's query
@dataclass
class Query:
    """The queue's query string, checked: the filter, the paging and what was wrong."""

    values: dict[str, str]
    filter: queue.Filter
    oldest_first: bool
    after: str | None
    before: str | None
    errors: dict[str, str] = field(default_factory=dict)

    def url(self, **changes: str | None) -> str:
        """/registrations with these filters (a value None drops the key; paging resets)."""
        params = {k: v for k, v in self.values.items() if v}
        for key, value in changes.items():
            if value:
                params[key] = value
            else:
                params.pop(key, None)
        return "/registrations" + (f"?{urlencode(params)}" if params else "")

    @property
    def query_string(self) -> str:
        """The filters (no paging): for links to other pages and the export."""
        return urlencode({k: v for k, v in self.values.items() if v})

    @property
    def here(self) -> str:
        """The filters and the page: to come back to the same page after an action."""
        paging = {"setelah": self.after, "sebelum": self.before}
        return urlencode({**{k: v for k, v in self.values.items() if v},
                          **{k: v for k, v in paging.items() if v}})


def _date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def read_query(params: Any, scope: str | None) -> Query:
    """The queue's filters from a query string; a bad value is dropped with a message."""
    values = {key: str(params.get(key, "")).strip()[:40] for key in QUERY_KEYS}
    errors: dict[str, str] = {}
    status = values["status"] if values["status"] in rules.ALL_STATUSES else None
    if values["status"] and status is None:
        errors["status"], values["status"] = "Status tidak dikenal.", ""
    region = queue.digits(values["wilayah"]) if values["wilayah"] else None
    if values["wilayah"] and region is None:
        errors["wilayah"] = "Kode wilayah berupa angka, contoh 32.01 atau 3201."
        values["wilayah"] = ""
    sector = values["bidang"] if values["bidang"] in SECTORS else None
    if values["bidang"] and sector is None:
        errors["bidang"], values["bidang"] = "Bidang usaha tidak dikenal.", ""
    days: dict[str, date | None] = {}
    for key in ("dari", "sampai"):
        days[key] = _date(values[key]) if values[key] else None
        if values[key] and days[key] is None:
            errors[key], values[key] = "Tanggal tidak terbaca (format TTTT-BB-HH).", ""
    number = nik = None
    if values["q"]:
        wanted = values["q"].upper().replace(" ", "")
        digits = nik_rules.clean(values["q"])
        if rules.NUMBER_RE.match(wanted):
            number = wanted
        elif len(digits) == 16 and digits.isascii() and digits.isdigit():
            nik = digits
        else:
            errors["q"] = ("Cari dengan nomor pendaftaran lengkap (contoh PRK-2026-000123) "
                           "atau NIK 16 digit. Sebagian nomor atau nama tidak dicari.")
    values["urut"] = "lama" if values["urut"] == "lama" else ""
    f = queue.Filter(status=status, region=region, field=sector, date_from=days["dari"],
                     date_to=days["sampai"], number=number, nik=nik, scope=scope)
    if errors.get("q"):
        f = queue.Filter(scope=scope, number="-")  # a search that was not understood: none
    return Query(values, f, values["urut"] == "lama", params.get("setelah") or None,
                 params.get("sebelum") or None, errors)


def count_cache(request: Request) -> queue.CountCache:
    """This app's cache of counts per status (a few seconds old at most; cleared by every
    status change made here)."""
    state = request.app.state
    if getattr(state, "registration_counts", None) is None:
        state.registration_counts = queue.CountCache()
    return state.registration_counts


def _scope(request: Request) -> str | None:
    operator = current_operator(request)
    return operator.region if operator.role == "verifier" else None


def queue_page(request: Request) -> Response:
    """The queue; an htmx request for `#hasil` gets only the results."""
    operator = current_operator(request)
    query = read_query(request.query_params, _scope(request))
    session = db(request)
    found = queue.page(session, query.filter, after=query.after, before=query.before,
                       oldest_first=query.oldest_first)
    counts = count_cache(request).get(session, query.filter)
    context = {
        "q": query, "page": found, "counts": counts,
        "total": counts.get(query.filter.status, 0) if query.filter.status
        else sum(counts.values()),
        "statuses": rules.ALL_STATUSES, "status_labels": STATUS_LABELS,
        "action_labels": ACTION_LABELS, "sectors": SECTORS, "sector_label": sector_label,
        "mask": nik_rules.mask, "can_act": operator.has_role(*ACTORS),
        "can_export": operator.has_role("supervisor"),
        "scope": _scope(request), "reason_max": rules.REASON_MAX,
    }
    partial = (request.headers.get("hx-request") == "true"
               and request.headers.get("hx-target") == "hasil")
    return render(request, "registrations/_results.html" if partial
                  else "registrations/queue.html", context)


# ---------------------------------------------------------------------- detail
@dataclass(frozen=True)
class Check:
    label: str
    given: str
    registry: str
    ok: bool | None   # None: nothing to compare


# Issue 16 item 5: the applicant's own Telegram contact did not match the registry's phone
# for the NIK (or was not shared), so the chat showed nothing from the registry.
CONTACT_WARNING = ("Kontak Telegram tidak cocok dengan data PKH / tidak dibagikan: pastikan "
                   "identitas pemohon (misalnya lewat pendamping PKH atau nomor HP di data "
                   "PKH) sebelum memverifikasi.")


def _nik_birth(nik: nik_rules.Nik, near: date) -> date | None:
    """The NIK's birth date with the century closest to `near`."""
    dates = nik.birth_dates()
    return min(dates, key=lambda d: abs((d - near).days)) if dates else None


def compare(registration: Registration, kpm: Kpm | None, today: date) -> dict[str, Any]:
    """What the applicant gave next to the registry, the bot's warnings and the criteria."""
    t = texts()
    checks: list[Check] = []
    warnings: list[str] = []
    try:
        nik = nik_rules.parse(registration.nik)
    except nik_rules.NikError:
        nik = None
        warnings.append("NIK tidak sah menurut aturan NIK (kode provinsi atau tanggal).")
    if kpm is None:
        warnings.append("NIK ini tidak ada di data KPM: pendaftar tidak bisa dipastikan "
                        "sebagai KPM PKH.")
    checks.append(Check("Nama", registration.nama, kpm.nama if kpm else "–",
                        same_person(registration.nama, kpm.nama) if kpm else None))
    if kpm and not same_person(registration.nama, kpm.nama):
        warnings.append("Nama yang diisi tidak cocok dengan nama di data KPM.")
    checks.append(Check("Tanggal lahir", _day(registration.tanggal_lahir),
                        _day(kpm.tanggal_lahir) if kpm else "–",
                        registration.tanggal_lahir == kpm.tanggal_lahir if kpm else None))
    if nik is not None:
        from_nik = _nik_birth(nik, registration.tanggal_lahir)
        shown = (f"{nik.day:02d}-{nik.month:02d}-{nik.yy:02d}"
                 + (f" ({_day(from_nik)})" if from_nik else ""))
        checks.append(Check("Tanggal lahir menurut NIK", shown,
                            _day(kpm.tanggal_lahir) if kpm else "–",
                            nik.matches_birth_date(kpm.tanggal_lahir) if kpm else None))
        if not nik.matches_birth_date(registration.tanggal_lahir):
            warnings.append("Tanggal lahir yang diisi berbeda dengan tanggal di NIK (bot sudah "
                            "mengingatkan pendaftar). NIK tidak berubah walau tanggalnya "
                            "keliru: konfirmasi, jangan langsung tolak.")
        if kpm and not nik.matches_birth_date(kpm.tanggal_lahir):
            warnings.append("Tanggal lahir di data KPM berbeda dengan tanggal di NIK "
                            "(peringatan yang sama dengan cek kelayakan).")
        sex = "P" if nik.female else "L"
        checks.append(Check("Jenis kelamin menurut NIK", "Perempuan" if nik.female
                            else "Laki-laki", _sex(kpm.jenis_kelamin) if kpm else "–",
                            sex == kpm.jenis_kelamin.upper() if kpm else None))
    # The NIK's region (where it was issued), then the address as matched (issue 15).
    region = registration.nik[:6]
    checks.append(Check("Wilayah (kode dari NIK)",
                        f"{_dotted(region)} · {registration.desa}, {registration.kecamatan}, "
                        f"{registration.kabupaten}",
                        _dotted(kpm.kode_wilayah) if kpm else "–",
                        kpm.kode_wilayah.startswith(region) if kpm else None))
    matched = address_code(registration)
    if matched:
        checks.append(Check("Wilayah alamat (kode resmi)", matched,
                            _dotted(kpm.kode_wilayah) if kpm else "–",
                            kpm.kode_wilayah.startswith(matched.replace(".", ""))
                            if kpm else None))
    if registration.wilayah_status == region_matching.UNLISTED:
        warnings.append("Sebagian alamat tidak ada di daftar wilayah resmi (pendaftar memilih "
                        "“Tidak ada di daftar”): periksa alamatnya dengan KTP.")
    if kpm and not kpm.kode_wilayah.startswith(region):
        warnings.append("Kode wilayah di NIK berbeda dengan wilayah di data KPM (NIK lama "
                        "bisa mendahului pemekaran wilayah: konfirmasi).")
    if registration.bidang_usaha == eligibility.REVIEW:
        warnings.append("Bidang usaha belum jelas masuk tujuh bidang Prokus: nilai dari "
                        "cerita usahanya.")
    born = kpm.tanggal_lahir if kpm else registration.tanggal_lahir
    criteria = []
    for criterion in eligibility.evaluate(kpm.status_pkh if kpm else "tidak_ada", born,
                                          registration.bidang_usaha, today):
        state = "review" if criterion.review else ("ok" if criterion.ok else "fail")
        values = dict(criterion.values)
        if "sector" in values:
            values["sector"] = sector_label(str(values["sector"]))
        text = t(f"criterion/{criterion.key}/{state}", **values)
        if criterion.key == "graduated" and kpm is None:
            text = "Tidak ada di data KPM, status PKH tidak diketahui"
        mark = "⏳" if criterion.review else ("✅" if criterion.ok else "❌")
        criteria.append({"mark": mark, "text": text, "ok": criterion.ok})
    return {"checks": checks, "warnings": warnings, "criteria": criteria}


def address_code(registration: Registration) -> str | None:
    """The most precise official code of the address (dotted), if any level matched."""
    codes = [c for c in (registration.kode_desa, registration.kode_kecamatan,
                         registration.kode_kabupaten) if c]
    return codes[0] if codes else None


def address_rows(registration: Registration) -> list[dict[str, str | None]]:
    """The address level by level for the verifier: the official name with its code, or
    the typed text with why it has no code ("tidak ada di daftar": the applicant's choice;
    "belum dicocokkan": typed before or without the regions table)."""
    rows = []
    for label, level in (("Kabupaten/kota", "kabupaten"), ("Kecamatan", "kecamatan"),
                         ("Desa/kelurahan", "desa")):
        code = getattr(registration, f"kode_{level}")
        if code:
            note = None
        elif registration.wilayah_status == region_matching.UNLISTED:
            note = "tidak ada di daftar"
        else:
            note = "belum dicocokkan"
        rows.append({"label": label, "name": getattr(registration, level), "code": code,
                     "note": note})
    return rows


def _day(value: date | None) -> str:
    return value.strftime("%d-%m-%Y") if value else "–"


def _sex(code: str) -> str:
    return {"P": "Perempuan", "L": "Laki-laki"}.get(code.upper(), code)


def _dotted(code: str | None) -> str:
    from db.operators import dotted_region

    return dotted_region(code) or "–"


def _number(request: Request) -> str:
    number = str(request.path_params["number"]).strip().upper()
    if not rules.NUMBER_RE.match(number):
        raise HTTPException(404)
    return number


def detail_page(request: Request) -> Response:
    """One registration next to the registry record, its criteria and its history."""
    operator = current_operator(request)
    session = db(request)
    registration = queue.find(session, _number(request), _scope(request))
    if registration is None:
        raise HTTPException(404)
    kpm = queue.registry_record(session, registration.nik)
    today = now(request).astimezone(queue.WIB).date()
    targets = sorted(rules.TRANSITIONS[registration.status], key=rules.STATUSES.index)
    return render(request, "registrations/detail.html", {
        "r": registration, "kpm": kpm, **compare(registration, kpm, today),
        "address": address_rows(registration),
        "history": queue.history(session, registration), "status_labels": STATUS_LABELS,
        "action_labels": ACTION_LABELS, "targets": targets, "sector_label": sector_label,
        "can_act": operator.has_role(*ACTORS), "reason_max": rules.REASON_MAX,
        "back": _back(request.query_params.get("kembali")),
        "contact_warning": CONTACT_WARNING,
    })


# ---------------------------------------------------------------------- status changes
def refusal(exc: rules.StatusChangeError, number: str, new: str) -> str:
    """Why a change was not made, in the operator's words."""
    current = STATUS_LABELS.get(exc.current or "", exc.current or "")
    return {
        "not_found": f"{number}: tidak ditemukan di wilayah Anda.",
        "stale": f"{number}: sudah diubah petugas lain menjadi “{current}” sebelum Anda "
                 "menyimpan. Tindakan Anda tidak dijalankan; periksa lagi datanya.",
        "same_status": f"{number}: statusnya sudah “{current}”.",
        "not_allowed": f"{number}: status “{current}” tidak bisa diubah menjadi "
                       f"“{STATUS_LABELS.get(new, new)}”.",
        "reason_required": f"{number}: alasan penolakan wajib diisi (alasan dikirim ke "
                           "pendaftar).",
        "reason_too_long": f"{number}: alasan paling banyak {rules.REASON_MAX} karakter.",
        "unknown_status": f"{number}: tindakan tidak dikenal.",
    }.get(exc.code, f"{number}: tidak bisa diubah.")


def change(request: Request, number: str, new: str, seen: str | None,
           reason: str | None) -> tuple[bool, str]:
    """One status change in its own transaction through set_status (the CLI's function);
    a refusal is audited as `registration_skip`. Returns (applied, why not)."""
    operator = current_operator(request)
    session = web_context(request).sessions()
    reason = (reason or "").strip() or None
    extra = {"via": "web", "ip": client_ip(request)}

    def notice(registration: Registration) -> str:
        return texts()(f"status_notice/{new}", number=registration.number,
                       reason=reason or "")

    try:
        with session.begin():
            repo.set_status(session, number, new, reason, operator.actor, notice,
                            expected=seen or None, region=_scope(request), at=now(request),
                            audit_detail=extra)
        count_cache(request).clear()
        return True, ""
    except rules.StatusChangeError as exc:
        with session.begin():
            audit(request, session, "registration_skip", exc.code, subject=number,
                  detail={"wanted": new, "seen": seen, "current": exc.current})
        return False, refusal(exc, number, new)
    finally:
        session.close()


@require_role(*ACTORS)
def change_one(request: Request) -> Response:
    """Verify, accept or reject the registration of the detail page."""
    number = _number(request)
    if queue.find(db(request), number, _scope(request)) is None:
        raise HTTPException(404)
    data = form(request)
    new = str(data.get("status", ""))
    if new not in ACTION_LABELS:
        raise HTTPException(400)
    applied, why = change(request, number, new, str(data.get("seen", "")) or None,
                          str(data.get("alasan", "")))
    if applied:
        flash(request, f"{number}: status menjadi “{STATUS_LABELS[new]}”. Pemberitahuan "
                       "untuk pendaftar sudah masuk antrean kirim.")
    else:
        flash(request, why, "error")
    back = _back(str(data.get("kembali", "")))
    return redirect(f"/registrations/{number}" + (f"?kembali={back}" if back else ""))


@require_role(*ACTORS)
def change_many(request: Request) -> Response:
    """The bulk action on the ticked registrations: each its own outcome, one summary."""
    data = form(request)
    new = str(data.get("tindakan", ""))
    back = _back(str(data.get("kembali", "")))
    target = "/registrations" + (f"?{back}" if back else "")
    picked = [str(v) for v in data.getlist("pilih")][:BULK_MAX]
    if new not in ACTION_LABELS:
        flash(request, "Pilih tindakannya: verifikasi, terima atau tolak.", "error")
        return redirect(target)
    if not picked:
        flash(request, "Centang dulu pendaftaran yang ingin diproses.", "error")
        return redirect(target)
    reason = str(data.get("alasan", "")).strip()
    if new == rules.REJECTED and not reason:
        flash(request, "Alasan penolakan wajib diisi (alasan dikirim ke setiap pendaftar). "
                       "Tidak ada yang diubah.", "error")
        return redirect(target)
    applied, skipped = [], []
    for item in dict.fromkeys(picked):  # once each, in the order shown
        number, _, seen = item.partition(":")
        number = number.strip().upper()
        if not rules.NUMBER_RE.match(number):
            continue
        done, why = change(request, number, new, seen or None, reason)
        (applied if done else skipped).append(number if done else why)
    label = ACTION_LABELS[new]
    text = f"{label}: {len(applied)} diterapkan, {len(skipped)} dilewati."
    if skipped:
        text += " " + " ".join(skipped[:10]) + (" …" if len(skipped) > 10 else "")
    flash(request, text, "ok" if not skipped else ("info" if applied else "error"))
    return redirect(target)


def _back(text: str | None) -> str:
    """The queue's query string to go back to, rebuilt from known keys only."""
    pairs = [(k, v[:40]) for k, v in parse_qsl(text or "") if k in (*QUERY_KEYS, "setelah",
                                                                       "sebelum")]
    return urlencode(pairs)


# ---------------------------------------------------------------------- export
@require_role("supervisor")
def export_csv(request: Request) -> Response:
    """The filtered registrations as CSV, streamed (NIK and phone masked), audited with
    the number of rows once the file is complete (or cut short)."""
    query = read_query(request.query_params, _scope(request))
    sessions = web_context(request).sessions
    stamp = now(request).astimezone(queue.WIB)
    filters = {k: v for k, v in query.values.items() if v}

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, queue.EXPORT_COLUMNS, extrasaction="ignore")
        count, outcome = 0, "interrupted"
        try:
            buffer.write("\ufeff")  # so a spreadsheet reads the file as UTF-8
            writer.writeheader()
            with sessions() as session:
                for registration in queue.stream(session, query.filter):
                    writer.writerow(queue.export_row(registration, masked=True))
                    count += 1
                    if count % 500 == 0:
                        yield buffer.getvalue()
                        buffer.seek(0)
                        buffer.truncate()
            yield buffer.getvalue()
            outcome = "ok"
        finally:
            with sessions.begin() as session:
                audit(request, session, "registrations_export", outcome,
                      detail={"rows": count, "filters": filters, "masked": True,
                              "format": "csv"})

    name = f"pendaftaran-prokus-{stamp:%Y%m%d-%H%M}.csv"
    return StreamingResponse(lines(), media_type="text/csv; charset=utf-8",
                             headers={"content-disposition": f'attachment; filename="{name}"'})


routes = [
    Route("/registrations", queue_page, methods=["GET"]),
    Route("/registrations/export.csv", export_csv, methods=["GET"]),
    Route("/registrations/bulk", change_many, methods=["POST"]),
    Route("/registrations/{number}", detail_page, methods=["GET"]),
    Route("/registrations/{number}/status", change_one, methods=["POST"]),
]
