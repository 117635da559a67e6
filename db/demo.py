"""Clearly fake demo records, so the console chat has something to work with."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Kpm, utcnow

# Every name says FIKTIF and every phone is 08120000000x: nobody can mistake them.
DEMO_KPM = [
    # nik, nama, tanggal_lahir, jk, kode_wilayah, status, graduasi, hp
    ("3201051203900001", "Contoh Budi Santoso (FIKTIF)", date(1990, 3, 12), "L",
     "3201052001", "graduasi", date(2024, 6, 30), "081200000001"),
    ("3201055508920002", "Contoh Siti Aminah (FIKTIF)", date(1992, 8, 15), "P",
     "3201052001", "graduasi", date(2025, 1, 31), "081200000002"),
    ("3374024101950003", "Contoh Dewi Lestari (FIKTIF)", date(1995, 1, 1), "P",
     "3374021003", "aktif", None, None),
    ("3578100707800004", "Contoh Agus Wibowo (FIKTIF)", date(1980, 7, 7), "L",
     "3578101004", "graduasi", date(2023, 12, 1), "081200000004"),
    ("7371116906980005", "Contoh Rina Marlina (FIKTIF)", date(1998, 6, 29), "P",
     "7371111002", "graduasi", date(2025, 9, 15), None),
]


def load_demo(session: Session) -> int:
    """Insert the demo records that are missing; return how many were added."""
    existing = set(session.scalars(select(Kpm.nik).where(Kpm.nik.in_([r[0] for r in DEMO_KPM]))))
    added = 0
    for nik, nama, lahir, jk, wilayah, status, graduasi, hp in DEMO_KPM:
        if nik in existing:
            continue
        session.add(Kpm(
            nik=nik, nama=nama, tanggal_lahir=lahir, jenis_kelamin=jk, kode_wilayah=wilayah,
            status_pkh=status, tanggal_graduasi=graduasi, no_hp=hp, updated_at=utcnow(),
        ))
        added += 1
    return added
