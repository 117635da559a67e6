"""Clearly fake demo records, so the console chat has something to work with.

Birth dates are relative to today (Jakarta date), so the eligible demo person stays under 40
and the "over 40" one stays over 40 whatever the year; each NIK embeds its birth date
(DDMMYY, women +40), so the NIKs follow the year too. `prokus db demo` prints the ones to use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from db import crypto
from db.kpm_import import today_wib
from db.models import Kpm, utcnow


@dataclass(frozen=True)
class DemoKpm:
    """One fake KPM: `age` is the age in whole years reached this calendar year."""

    nama: str
    age: int
    month: int
    day: int
    jenis_kelamin: str
    kode_wilayah: str
    serial: int
    status_pkh: str
    graduated_years_ago: int | None
    no_hp: str | None
    note: str

    def born(self, today: date) -> date:
        """The birth date: this month and day, `age` years before today's year."""
        return date(today.year - self.age, self.month, self.day)

    def nik(self, today: date) -> str:
        """Region (6 digits) + birth date DDMMYY (women: day + 40) + serial."""
        born = self.born(today)
        day = born.day + (40 if self.jenis_kelamin == "P" else 0)
        return (f"{self.kode_wilayah[:6]}{day:02d}{born.month:02d}{born.year % 100:02d}"
                f"{self.serial:04d}")

    def graduated(self, today: date) -> date | None:
        """The PKH graduation date, if any (30 June, some years back)."""
        if self.graduated_years_ago is None:
            return None
        return date(today.year - self.graduated_years_ago, 6, 30)


# Every name says FIKTIF and every phone is 08120000000x: nobody can mistake them.
# Ages are chosen so each record keeps its role all year (a birthday moves it by one only).
DEMO_KPM = [
    DemoKpm("Contoh Budi Santoso (FIKTIF)", 36, 3, 12, "L", "3201052001", 1, "graduasi", 2,
            "081200000001", "eligible"),
    DemoKpm("Contoh Siti Aminah (FIKTIF)", 34, 8, 15, "P", "3201052001", 2, "graduasi", 1,
            "081200000002", "eligible"),
    DemoKpm("Contoh Dewi Lestari (FIKTIF)", 31, 1, 1, "P", "3374021003", 3, "aktif", None,
            None, "not graduated from PKH"),
    DemoKpm("Contoh Agus Wibowo (FIKTIF)", 46, 7, 7, "L", "3578101004", 4, "graduasi", 3,
            "081200000004", "over 40"),
    DemoKpm("Contoh Rina Marlina (FIKTIF)", 28, 6, 29, "P", "7371111002", 5, "graduasi", 1,
            None, "eligible"),
]


def demo_rows(today: date | None = None) -> list[tuple[str, str, DemoKpm]]:
    """(NIK, name without the FIKTIF suffix, record) for each demo KPM as of `today`."""
    today = today or today_wib()
    return [(r.nik(today), r.nama.removesuffix(" (FIKTIF)"), r) for r in DEMO_KPM]


def load_demo(session: Session, today: date | None = None) -> int:
    """Insert the demo records that are missing; return how many were added."""
    today = today or today_wib()
    niks = [r.nik(today) for r in DEMO_KPM]
    ring = crypto.keyring()
    hashes = {nik: ring.blinds(nik) for nik in niks}
    wanted = [h for hs in hashes.values() for h in hs]
    existing = set(session.scalars(select(Kpm.nik_hash).where(Kpm.nik_hash.in_(wanted))))
    added = 0
    for nik, record in zip(niks, DEMO_KPM, strict=True):
        if existing.intersection(hashes[nik]):
            continue
        session.add(Kpm(
            nik=nik, nama=record.nama, tanggal_lahir=record.born(today),
            jenis_kelamin=record.jenis_kelamin, kode_wilayah=record.kode_wilayah,
            status_pkh=record.status_pkh, tanggal_graduasi=record.graduated(today),
            no_hp=record.no_hp, updated_at=utcnow(),
        ))
        added += 1
    return added
