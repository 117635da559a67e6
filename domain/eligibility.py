"""Prokus eligibility: graduated from PKH, under 40 years old today, runs a business in one
of the seven fields. The same rules serve the eligibility check and the registration."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

MAX_AGE_EXCLUSIVE = 40

# The seven business fields (entity values of `business_sector`).
SECTORS: tuple[str, ...] = (
    "industri_rumah_tangga", "jasa", "kuliner", "kerajinan_tangan", "industri_kreatif",
    "budi_daya_pertanian", "agrowisata",
)
NO_BUSINESS = "belum_ada"
# "Not sure": the business fits none of the seven fields clearly, a petugas judges it when
# the registration is verified. It does not block the check or the registration.
REVIEW = "perlu_dinilai"


def age_on(born: date, today: date) -> int:
    """Completed years on `today`. Someone born on 29 February turns a year older on
    1 March in common years (their birthday has not yet come on 28 February)."""
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


@dataclass(frozen=True)
class Criterion:
    """One rule: `key` names it in responses.yml, `ok` says whether it is met (or does not
    block), `review` that a petugas decides it later (shown as "to be assessed")."""

    key: str
    ok: bool
    values: dict[str, object]
    review: bool = False


def evaluate(status_pkh: str, born: date, sector: str | None, today: date) -> list[Criterion]:
    """Check the three criteria; the caller shows each one with ✅ or ❌ and its reason."""
    age = age_on(born, today)
    return [
        Criterion("graduated", status_pkh == "graduasi", {}),
        Criterion("under_40", age < MAX_AGE_EXCLUSIVE, {"age": age}),
        Criterion("business", sector in SECTORS or sector == REVIEW,
                  {"sector": sector or NO_BUSINESS}, review=sector == REVIEW),
    ]


def eligible(criteria: list[Criterion]) -> bool:
    return all(c.ok for c in criteria)


def needs_review(criteria: list[Criterion]) -> bool:
    """True when a criterion is left to a petugas (the business field "not sure")."""
    return any(c.review for c in criteria)
