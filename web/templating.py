"""Jinja2 templates (autoescape on) with the layout's variables and Indonesian formats.

Every template gets: `operator` (SignedIn or None), `nav` (the menu for this operator),
`flashes` (list of (level, text)), `csrf_token`, `csrf_field` (the hidden input for a form),
`static(path)` (a versioned /static URL), `role_label(role)`; and the filters `waktu`
(datetime -> "28 Nov 2026 10.05 WIB"), `tanggal` (date -> "28 November 2026"), `angka`
(1234567 -> "1.234.567") and `wilayah` (3201 -> "32.01").
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from db.operators import dotted_region
from domain.regions import ZONES
from web.nav import menu_for

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

ROLE_LABELS = {"verifier": "Verifikator", "coordinator": "Koordinator",
               "supervisor": "Supervisor"}
MONTHS = ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus",
          "September", "Oktober", "November", "Desember")


def role_label(role: str) -> str:
    return ROLE_LABELS.get(role, role)


def waktu(value: datetime | None, zone: str = "WIB") -> str:
    """A moment in an Indonesian zone (WIB by default): 28 Nov 2026 10.05 WIB."""
    if value is None:
        return "–"
    local = value.astimezone(ZONES[zone])
    return f"{local.day} {MONTHS[local.month - 1][:3]} {local.year} {local:%H.%M} {zone}"


def tanggal(value: date | datetime | None) -> str:
    """A day written out: 28 November 2026."""
    if value is None:
        return "–"
    if isinstance(value, datetime):
        value = value.astimezone(ZONES["WIB"]).date()
    return f"{value.day} {MONTHS[value.month - 1]} {value.year}"


def angka(value: int | float | None) -> str:
    """Thousands with dots, as written in Indonesia: 1.234.567."""
    if value is None:
        return "–"
    return f"{value:,}".replace(",", ".")


def _static_versions() -> dict[str, str]:
    """A short content hash per static file, so a changed file gets a new URL."""
    return {path.relative_to(STATIC).as_posix():
            hashlib.sha256(path.read_bytes()).hexdigest()[:10]
            for path in STATIC.rglob("*") if path.is_file()}


class Templates:
    """The console's Jinja2 environment and the context every page gets."""

    def __init__(self) -> None:
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                                 trim_blocks=True, lstrip_blocks=True)
        versions = _static_versions()
        env.globals.update(
            static=lambda path: f"/static/{path}?v={versions.get(path, '0')}",
            role_label=role_label,
        )
        env.filters.update(waktu=waktu, tanggal=tanggal, angka=angka, wilayah=dotted_region)
        self.env = env
        self._jinja = Jinja2Templates(env=env, context_processors=[self._layout])

    @staticmethod
    def _layout(request: Request) -> dict[str, Any]:
        from web.deps import take_flashes

        operator = getattr(request.state, "operator", None)
        token = getattr(request.state, "csrf_token", "")
        return {
            "operator": operator,
            "nav": menu_for(operator.role, request.url.path) if operator else [],
            "flashes": take_flashes(request),
            "csrf_token": token,
            "csrf_field": Markup('<input type="hidden" name="csrf_token" value="{}">').format(
                escape(token)),
        }

    def response(self, request: Request, name: str, context: dict[str, Any], *,
                 status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
        return self._jinja.TemplateResponse(request, name, context, status_code=status_code,
                                            headers=headers)
