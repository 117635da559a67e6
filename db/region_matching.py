"""Addresses as official regions (issue 15 item 3): when a typed kabupaten/kecamatan/desa
counts as matched, the region a NIK names, and matching the registrations stored before
(or without) the regions table.

Thresholds (scores of db.regions.match, 0-100), tuned on tests/data/region_variants.yml
(388 typed variants: 365 taken as clear with these rules, none of them wrong):

- clear: the best candidate scores >= 90 and >= 8 points above the next one ("kab bogor":
  Kabupaten Bogor 100, Kota Bogor 92), or a typo alone in its parent: >= 85 and >= 20
  points above the next ("pakansary" 88.9, next 54.5).
- close: the candidates scoring >= 70 (at most 5) are offered as buttons.
- below 70: nothing close; the bot gives a hint with an example.

Only clear matches are stored without asking; existing registrations take nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from db import regions
from db.models import Region, Registration

CLEAR_SCORE, CLEAR_GAP = 90.0, 8.0
TYPO_SCORE, TYPO_GAP = 85.0, 20.0
CLOSE_SCORE = 70.0
MAX_CHOICES = 5

MATCHED, UNLISTED = "cocok", "tidak_ada"  # registrations.wilayah_status
ADDRESS_LEVELS = ("kabupaten", "kecamatan", "desa")


@dataclass(frozen=True)
class Outcome:
    """What one typed answer matched: `clear` (take it), else `close` (offer them)."""

    clear: regions.Candidate | None = None
    close: tuple[regions.Candidate, ...] = ()


def decide(candidates: list[regions.Candidate]) -> Outcome:
    """Apply the thresholds above to candidates sorted best first."""
    if not candidates:
        return Outcome()
    top = candidates[0].score
    gap = top - (candidates[1].score if len(candidates) > 1 else 0.0)
    if (top >= CLEAR_SCORE and gap >= CLEAR_GAP) or (top >= TYPO_SCORE and gap >= TYPO_GAP):
        return Outcome(clear=candidates[0])
    return Outcome(close=tuple(c for c in candidates if c.score >= CLOSE_SCORE)[:MAX_CHOICES])


def find(session: Session, text: str, within: str | None, level: str) -> Outcome | None:
    """Match `text` at `level` under `within` (the whole country for None). None when it
    cannot be matched at all: the regions table is empty, or `within` is unknown to it
    (the caller then keeps the text as typed, as before the table existed)."""
    if not (text or "").strip():
        return Outcome()
    try:
        found = regions.match(session, text, within=within, level=level,
                              limit=MAX_CHOICES + 1)
    except regions.RegionsNotLoaded:
        return None
    except ValueError:  # an unknown parent code
        return None
    return decide(found)


@dataclass(frozen=True)
class NikPlace:
    """The kabupaten and kecamatan (and their province) the first six digits of a NIK name."""

    province: Region
    kabupaten: Region
    kecamatan: Region


def nik_place(session: Session, nik: str) -> NikPlace | None:
    """The NIK's kecamatan with its parents, or None when the table lacks it (an empty
    table, a code from before a split, or a NIK that is not 16 digits)."""
    digits = (nik or "")[:6]
    if len(digits) != 6 or not digits.isdigit():
        return None
    kecamatan = regions.get(session, regions.dotted(digits))
    if kecamatan is None or kecamatan.level != "kecamatan":
        return None
    kabupaten = regions.get(session, kecamatan.parent_code or "")
    province = regions.get(session, (kabupaten.parent_code or "") if kabupaten else "")
    if kabupaten is None or province is None:
        return None
    return NikPlace(province, kabupaten, kecamatan)


def example_child(session: Session, parent: str | None, level: str) -> str | None:
    """A real name to show in a hint: the first region (by code) under `parent`."""
    stmt = select(Region.name).where(Region.level == level)
    stmt = stmt.where(Region.parent_code == parent) if parent else stmt
    return session.scalar(stmt.order_by(Region.code).limit(1))


def kode_wilayah(nik: str, codes: Iterable[str | None]) -> str:
    """The digits of the most precise code given (desa, else kecamatan, else kabupaten),
    else the NIK's first six digits (as before codes were stored)."""
    known = [c for c in codes if c]
    if not known:
        return nik[:6]
    return max(known, key=len).replace(".", "")


# -------------------------------------------------------- registrations stored as text
@dataclass
class MatchCounts:
    seen: int = 0
    matched: int = 0      # all three levels
    partly: int = 0       # kabupaten (and maybe kecamatan) only
    unmatched: int = 0    # not even the kabupaten


def pending_ids(session: Session) -> list[int]:
    """Registrations without the full set of codes that the applicant did not mark as
    "not in the list": the ones `match_registrations` works on (never filtered on the
    personal text columns in SQL)."""
    return list(session.scalars(select(Registration.id)
                                .where(Registration.wilayah_status.is_(None))
                                .order_by(Registration.id)))


def _clear(session: Session, text: str, within: str | None, level: str) -> Region | None:
    outcome = find(session, text, within, level)
    if outcome is None or outcome.clear is None:
        return None
    return regions.get(session, outcome.clear.code)


def by_child(session: Session, candidates: Iterable[str], child_text: str,
             child_level: str) -> tuple[Region, Region] | None:
    """Of several close candidates ("Bogor": Kabupaten or Kota Bogor), the one under which
    `child_text` ("Ciomas") is a clear match, when exactly one has it: (candidate, child).
    The bot does the same when the user types the next level instead of choosing."""
    hits = []
    for code in candidates:
        outcome = find(session, child_text, code, child_level)
        if outcome is not None and outcome.clear is not None:
            hits.append((code, outcome.clear.code))
    if len(hits) != 1:
        return None
    parent, child = regions.get(session, hits[0][0]), regions.get(session, hits[0][1])
    return (parent, child) if parent is not None and child is not None else None


def _level_pair(session: Session, text: str, child_text: str, level: str,
                withins: list[str | None]) -> tuple[Region | None, Region | None]:
    """`level` matched within the first of `withins` that gives a clear match; else the
    close candidates settled by the level under it (then both are returned)."""
    close: list[str] = []
    for within in withins:
        outcome = find(session, text, within, level)
        if outcome is None:
            continue
        if outcome.clear is not None:
            return regions.get(session, outcome.clear.code), None
        close = close or [c.code for c in outcome.close]
    settled = by_child(session, close, child_text, ADDRESS_LEVELS[
        ADDRESS_LEVELS.index(level) + 1]) if close else None
    return settled if settled is not None else (None, None)


def match_one(session: Session, registration: Registration) -> int:
    """Match one registration's typed address (kabupaten within the NIK's province when
    the table has it, else across the country; kecamatan within the kabupaten; desa
    within the kecamatan); only clear matches are taken, or close candidates of one level
    settled by a clear match of the next ("Bogor" + "Ciomas": Kabupaten Bogor). Stores the
    codes, the official names of what matched, `kode_wilayah` and `wilayah_status`
    ("cocok" when all three matched). Returns how many levels matched (0-3). Running it
    again changes nothing."""
    nik = registration.nik or ""
    province = nik[:2] if len(nik) >= 2 and regions.get(session, nik[:2]) else None
    kecamatan = desa = None
    kabupaten, kecamatan = _level_pair(
        session, registration.kabupaten or "", registration.kecamatan or "", "kabupaten",
        [province, None] if province else [None])
    if kabupaten is not None and kecamatan is None:
        kecamatan, desa = _level_pair(session, registration.kecamatan or "",
                                      registration.desa or "", "kecamatan", [kabupaten.code])
    if kecamatan is not None and desa is None:
        desa = _clear(session, registration.desa or "", kecamatan.code, "desa")
    found = [r for r in (kabupaten, kecamatan, desa) if r is not None]
    for level, region in zip(ADDRESS_LEVELS, (kabupaten, kecamatan, desa), strict=True):
        if region is not None:
            setattr(registration, f"kode_{level}", region.code)
            if getattr(registration, level) != region.name:
                setattr(registration, level, region.name)
    if found:
        registration.kode_wilayah = kode_wilayah(nik, [r.code for r in found])
    if len(found) == 3:
        registration.wilayah_status = MATCHED
    return len(found)


def match_registrations(session: Session, ids: list[int],
                        progress: Callable[[int], None] | None = None) -> MatchCounts:
    """Match the registrations `ids` (from `pending_ids`) in the caller's transaction."""
    counts = MatchCounts()
    for start in range(0, len(ids), 200):
        batch = ids[start:start + 200]
        rows = session.scalars(select(Registration).where(Registration.id.in_(batch))
                               .order_by(Registration.id))
        for registration in rows:
            levels = match_one(session, registration)
            counts.seen += 1
            if levels == 3:
                counts.matched += 1
            elif levels:
                counts.partly += 1
            else:
                counts.unmatched += 1
        session.flush()
        if progress:
            progress(len(batch))
    return counts


@dataclass(frozen=True)
class Unmatched:
    number: str
    kabupaten: str
    kecamatan: str
    desa: str
    code: str | None    # the most precise code that did match (dotted), if any
    why: str            # "tidak_ada" (the applicant's choice) or "no_clear_match"


def unmatched(session: Session) -> list[Unmatched]:
    """Registrations whose address is not fully matched, oldest first."""
    stmt = (select(Registration)
            .where(or_(Registration.wilayah_status.is_(None),
                       Registration.wilayah_status != MATCHED))
            .order_by(Registration.id))
    out = []
    for r in session.scalars(stmt):
        codes = {level: getattr(r, f"kode_{level}") for level in ADDRESS_LEVELS}
        known = [c for c in codes.values() if c]
        out.append(Unmatched(r.number, r.kabupaten or "", r.kecamatan or "", r.desa or "",
                             max(known, key=len) if known else None,
                             UNLISTED if r.wilayah_status == UNLISTED else "no_clear_match"))
    return out
