"""The dashboard `/`: registrations, eligibility checks, broadcasts and turns the bot did not
understand, drawn as server-side SVG charts (bot.svg_charts) from db.dashboard.overview.

An operator with a region sees that region's registration figures (the NIK's first digits,
at most the kecamatan: a NIK holds no desa); the figures that have no region (broadcasts,
misunderstood turns) are shown only to operators without one. The figures, and the charts
drawn from them, are kept 60 seconds per (region, WIB day) in a TTLCache on the app, so
many operators opening `/` at once cost one computation.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot import svg_charts as svg
from db import dashboard as dash
from web.deps import current_operator, db, now, render
from web.nav import menu_for

CACHE_SECONDS = 60.0
DAYS = dash.DEFAULT_DAYS
DELIVERY_DAYS = 30
MAX_PROVINCES = 12
DELIVERY_COLORS = {"sent": "#16a34a", "pending": "#64748b", "failed": "#dc2626",
                   "uncertain": "#d97706", "cancelled": "#94a3b8"}
STATUS_COLORS = {"diajukan": "#2563eb", "diverifikasi": "#7c3aed", "diterima": "#16a34a",
                 "ditolak": "#dc2626", "ditarik": "#6b7280"}
_cache_lock = threading.Lock()


@dataclass(frozen=True)
class Figures:
    """What one (region, day) dashboard shows: the numbers and the drawn charts."""

    overview: dash.Dashboard
    charts: dict[str, Markup]
    totals: dict[str, int]
    computed_at: datetime


def _cache(request: Request) -> dash.TTLCache[Figures]:
    """The app's dashboard cache (one per app, so test apps do not share figures)."""
    state = request.app.state
    cache = getattr(state, "dashboard_cache", None)
    if cache is None:
        with _cache_lock:
            cache = getattr(state, "dashboard_cache", None)
            if cache is None:
                cache = dash.TTLCache(CACHE_SECONDS)
                state.dashboard_cache = cache
    return cache


def dashboard_region(region: str | None) -> str | None:
    """The NIK prefix for an operator's region: at most 6 digits (a NIK's kecamatan)."""
    if not region:
        return None
    return region[: dash.NIK_REGION_DIGITS]


def _svg(text: str) -> Markup:
    # bot.svg_charts escapes every text it is given, so its output is safe as it is.
    return Markup(text)


def draw(figures: dash.Dashboard) -> dict[str, Markup]:
    """The charts of the page, as SVG."""
    charts = {
        "per_day": svg.bar_chart_days(
            [(d.day, d.count) for d in figures.registrations_per_day],
            title=f"Pendaftaran per hari ({figures.days} hari terakhir)", unit="pendaftaran",
            empty_text="Belum ada pendaftaran dalam periode ini"),
        "per_status": svg.horizontal_bar_chart(
            [(c.label, c.count) for c in figures.per_status],
            title="Pendaftaran per status", unit="pendaftaran",
            empty_text="Belum ada pendaftaran"),
        "per_field": svg.horizontal_bar_chart(
            [(c.label, c.count) for c in figures.per_field],
            title="Pendaftaran per bidang usaha", unit="pendaftaran", color="#0891b2",
            empty_text="Belum ada pendaftaran"),
        "per_province": svg.horizontal_bar_chart(
            _top_provinces(figures.per_province),
            title="Pendaftaran per provinsi", unit="pendaftaran", color="#7c3aed",
            empty_text="Belum ada pendaftaran"),
        "eligibility": svg.line_chart_days(
            [(d.day, d.count) for d in figures.eligibility_checks_per_day],
            title=f"Cek kelayakan per hari ({figures.days} hari terakhir)", unit="cek",
            color="#16a34a", empty_text="Belum ada cek kelayakan dalam periode ini"),
    }
    if figures.region_prefix is None:
        days = [d.day for d in figures.deliveries_per_day]
        series = [(dash.DELIVERY_LABELS[group], [d.groups[group] for d in
                                                 figures.deliveries_per_day],
                   DELIVERY_COLORS[group]) for group in dash.DELIVERY_GROUPS]
        charts["deliveries"] = svg.stacked_bar_chart_days(
            days, series, title=f"Pengiriman siaran per hari ({len(days)} hari terakhir)",
            unit="pesan", empty_text="Belum ada siaran yang dikirim dalam periode ini")
        charts["not_understood"] = svg.bar_chart_days(
            [(d.day, d.turns) for d in figures.not_understood_per_day],
            title=f"Pesan yang tidak dipahami bot per hari ({figures.days} hari terakhir)",
            unit="pesan", color="#d97706",
            empty_text="Belum ada pesan yang tidak dipahami dalam periode ini")
    return {key: _svg(value) for key, value in charts.items()}


def _top_provinces(rows: list[dash.Category]) -> list[tuple[str, int]]:
    top = [(c.label, c.count) for c in rows[:MAX_PROVINCES]]
    rest = sum(c.count for c in rows[MAX_PROVINCES:])
    return top + ([("Provinsi lain", rest)] if rest else [])


def compute(session, region: str | None, today, moment: datetime) -> Figures:
    """The figures and charts for one region and WIB day (what the cache keeps)."""
    figures = dash.overview(session, DAYS, region_prefix=region, today=today,
                            delivery_days=DELIVERY_DAYS)
    totals = {
        "registrations": sum(c.count for c in figures.per_status),
        "last_days": sum(d.count for d in figures.registrations_per_day),
        "checks": sum(d.count for d in figures.eligibility_checks_per_day),
        "not_understood": sum(d.turns for d in figures.not_understood_per_day),
        "deliveries": sum(d.total for d in figures.deliveries_per_day),
    }
    return Figures(figures, draw(figures), totals, moment)


def figures_for(request: Request) -> Figures:
    """This operator's dashboard figures, from the cache when fresh."""
    operator = current_operator(request)
    region = dashboard_region(operator.region)
    moment = now(request)
    today = dash.today_wib(moment)
    return _cache(request).get((DAYS, region, today),
                               lambda: compute(db(request), region, today, moment))


def status_link(status: str) -> str:
    return "/registrations?" + urlencode({"status": status})


def home(request: Request) -> Response:
    """The dashboard, and the list of pages this operator can open."""
    operator = current_operator(request)
    figures = figures_for(request)
    pages = [item for item in menu_for(operator.role, "") if item["path"] != "/"]
    region = figures.overview.region_prefix
    return render(request, "home.html", {
        "pages": pages,
        "fig": figures.overview,
        "charts": figures.charts,
        "totals": figures.totals,
        "computed_at": figures.computed_at,
        "region": region,
        "region_narrowed": bool(operator.region and region and len(operator.region) >
                                len(region)),
        "status_colors": STATUS_COLORS,
        "status_link": status_link,
        "delivery_labels": dash.DELIVERY_LABELS,
        "delivery_groups": list(dash.DELIVERY_GROUPS),
        "can_audit": operator.has_role("supervisor"),
        "cache_seconds": int(CACHE_SECONDS),
        "handoff": figures.overview.handoff,
        "review": figures.overview.nlu_review,
        "duration": duration,
    })


def duration(value) -> str:
    """A median response time for people: "45 dtk", "12 mnt", "3 jam 5 mnt", or "–"."""
    if value is None:
        return "–"
    seconds = int(value.total_seconds())
    if seconds < 60:
        return f"{seconds} dtk"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} mnt"
    hours, rest = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} jam {rest} mnt" if rest else f"{hours} jam"
    return f"{hours // 24} hari {hours % 24} jam"


routes = [Route("/", home, methods=["GET"])]
