"""/audit: supervisors read the audit log (db.audit_query), newest first, 50 rows a page,
filtered by who (actor), what (action), when (WIB days, inclusive) and subject; every NIK
is masked on the way out. The filters are in the query string, so a filtered view can be
bookmarked or linked (the dashboard links to `/audit?action=not_understood`)."""

from __future__ import annotations

import json
from datetime import date
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from db import audit_query
from web.deps import db, render, require_role

DETAIL_CHARS = 300


def _day(value: str, label: str, errors: list[str]) -> date | None:
    value = value.strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors.append(f"Tanggal {label} tidak terbaca (gunakan pemilih tanggal, format "
                      "TTTT-BB-HH); filter itu diabaikan.")
        return None


def actor_of(who: str) -> str | None:
    """What the "who" box means: "siti" is the console operator siti; "user:12",
    "operator:siti", "cli:budi" are taken as written."""
    who = who.strip()
    if not who:
        return None
    return who if ":" in who else f"operator:{who.lower()}"


def parse_filters(request: Request) -> tuple[audit_query.AuditFilter, dict[str, str],
                                             list[str]]:
    """(the filter, the raw values to show back in the form, messages about bad values)."""
    query = request.query_params
    raw = {key: query.get(key, "")[:audit_query.MAX_FILTER_LENGTH].strip()
           for key in ("who", "action", "since", "until", "subject", "outcome")}
    errors: list[str] = []
    since = _day(raw["since"], "mulai", errors)
    until = _day(raw["until"], "sampai", errors)
    if since and until and since > until:
        errors.append("Tanggal mulai sesudah tanggal sampai; keduanya ditukar.")
        since, until = until, since
        raw["since"], raw["until"] = since.isoformat(), until.isoformat()
    f = audit_query.AuditFilter(actor=actor_of(raw["who"]),
                                actions=[raw["action"]] if raw["action"] else [],
                                since=since, until=until,
                                subject_contains=raw["subject"] or None,
                                outcome=raw["outcome"] or None)
    return f, raw, errors


def _page_number(request: Request) -> int:
    try:
        return max(1, int(request.query_params.get("page", "1")))
    except ValueError:
        return 1


def detail_text(detail: dict[str, Any] | None) -> str:
    """The (already masked) detail as short JSON."""
    if not detail:
        return ""
    text = json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= DETAIL_CHARS else text[: DETAIL_CHARS - 1] + "…"


@require_role("supervisor")
def audit_page(request: Request) -> Response:
    """The filter form and one page of matching audit rows."""
    f, raw, errors = parse_filters(request)
    session = db(request)
    result = audit_query.search(session, f, page=_page_number(request))
    kept = {key: value for key, value in raw.items() if value}

    def page_link(number: int) -> str:
        return "/audit?" + urlencode({**kept, "page": number})

    return render(request, "audit.html", {
        "result": result, "raw": raw, "errors": errors, "filtered": bool(kept),
        "actions": audit_query.known_actions(session),
        "page_link": page_link, "detail_text": detail_text,
    })


routes = [Route("/audit", audit_page, methods=["GET"])]
