"""Proving who someone is by NIK + full name against the KPM registry, shared by the
eligibility check, registration and the status lookup.

The reply never tells a stranger whether a NIK exists: an unknown NIK and a name that does
not match look the same. Every lookup is audited with the NIK masked, and each account may
look up at most LOOKUPS_PER_HOUR NIKs an hour (all features together).
"""

from __future__ import annotations

from datetime import timedelta

from actions.context import Context
from db import repo
from db.models import Kpm
from domain import names
from domain import nik as nik_rules

LOOKUPS_PER_HOUR = 5
LOOKUP_ACTION = "nik_lookup"


def actor(ctx: Context) -> str:
    return f"user:{ctx.user.id}"


def rate_limited(ctx: Context) -> bool:
    since = ctx.now - timedelta(hours=1)
    return repo.count_recent(ctx.session, actor(ctx), LOOKUP_ACTION, since) >= LOOKUPS_PER_HOUR


def verify(ctx: Context, nik: str, typed_name: str, purpose: str) -> Kpm | None:
    """The registry record when NIK and name match, else None; the lookup is audited."""
    kpm = repo.find_kpm(ctx.session, nik)
    matched = kpm is not None and names.same_person(typed_name, kpm.nama)
    outcome = "verified" if matched else ("name_mismatch" if kpm else "not_found")
    repo.audit(ctx.session, actor(ctx), LOOKUP_ACTION, outcome, subject=nik_rules.mask(nik),
               detail={"purpose": purpose}, at=ctx.now)
    return kpm if matched else None
