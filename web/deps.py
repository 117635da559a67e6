"""What a route handler needs, as plain functions of the request.

    from web.deps import audit, current_operator, db, flash, form, redirect, render, require_role

Handlers are ordinary `def` functions (Starlette runs them in its thread pool, which suits
the synchronous SQLAlchemy session); see web/__init__.py for the whole recipe.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from bot.settings import Settings
from db import operators as accounts
from db import repo
from web.security import (
    SESSION_COOKIE,
    cookie_header,
    csrf_exempt,
    public,
)

__all__ = [
    "SignedIn", "WebContext", "audit", "client_ip", "csrf_exempt", "csrf_token",
    "current_operator", "db", "flash", "form", "maybe_operator", "now", "public", "redirect",
    "render", "require_role", "web_context",
]

E = TypeVar("E", bound=Callable[..., Any])


@dataclass(frozen=True)
class SignedIn:
    """The operator of this request (a snapshot taken when the session was checked)."""

    id: int
    username: str
    role: str
    region: str | None      # kode wilayah digits (3201), None: not limited to a region
    session_id: int

    @property
    def actor(self) -> str:
        """The audit log's actor for this operator (the CLI writes the same form)."""
        return f"operator:{self.username}"

    @property
    def region_dotted(self) -> str | None:
        return accounts.dotted_region(self.region)

    def has_role(self, *roles: str) -> bool:
        return self.role in roles


@dataclass
class WebContext:
    """Built once by create_app and kept on app.state.web."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    clock: Callable[[], datetime]
    templates: Any = None   # web.templating.Templates, set by create_app

    @property
    def idle(self) -> timedelta:
        return timedelta(minutes=self.settings.web_idle_minutes)

    @property
    def lifetime(self) -> timedelta:
        return timedelta(hours=self.settings.web_session_hours)

    def look_up_session(self, token: str) -> tuple[Any, int, list[Any]] | None:
        """(operator, session id, pending flash messages) for a valid session token."""
        with self.sessions.begin() as session:
            found = accounts.find_session(session, token, now=self.clock(), idle=self.idle)
            if found.state != "valid":
                return None
            assert found.session is not None
            return found.operator, found.session.id, list(found.session.flash or [])


def utc_now() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------------- request helpers
def web_context(request: Request) -> WebContext:
    return request.app.state.web


def now(request: Request) -> datetime:
    """The app's clock (tests move it)."""
    return web_context(request).clock()


def maybe_operator(request: Request) -> SignedIn | None:
    """The signed-in operator, or None (on public pages)."""
    return request.state.operator


def current_operator(request: Request) -> SignedIn:
    """The signed-in operator; every non-public route has one."""
    operator = request.state.operator
    if operator is None:  # only on a @public route that assumed a session
        raise HTTPException(401, "not_signed_in")
    return operator


def require_role(*roles: str) -> Callable[[E], E]:
    """Let only operators with one of `roles` use the route; others get the 403 page.

        @require_role("supervisor")
        def operators_page(request): ...
    """
    unknown = set(roles) - set(accounts.ROLES)
    if not roles or unknown:
        raise ValueError(f"require_role needs roles from {accounts.ROLES}, got {roles}")

    def check(request: Request) -> None:
        if not current_operator(request).has_role(*roles):
            raise HTTPException(403, "role")

    def decorate(endpoint: E) -> E:
        if inspect.iscoroutinefunction(endpoint):
            @functools.wraps(endpoint)
            async def async_wrapper(request: Request) -> Any:
                check(request)
                return await endpoint(request)

            wrapper: Any = async_wrapper
        else:
            @functools.wraps(endpoint)
            def sync_wrapper(request: Request) -> Any:
                check(request)
                return endpoint(request)

            wrapper = sync_wrapper
        wrapper.prokus_roles = roles
        return wrapper

    return decorate


def db(request: Request) -> Session:
    """This request's database session, opened on first use and closed (uncommitted work
    rolled back) when the response is done. Call `.commit()` to keep changes."""
    state = request.state
    session = getattr(state, "db", None)
    if session is None:
        session = web_context(request).sessions()
        state.db = session
    return session


def form(request: Request) -> FormData:
    """The submitted urlencoded form of a POST (already parsed by the CSRF check)."""
    parsed = getattr(request.state, "form", None)
    if parsed is None:
        raise HTTPException(415, "form_expected")
    return parsed


def csrf_token(request: Request) -> str:
    """The token forms must send back (templates have it as `csrf_token` and `csrf_field`)."""
    return request.state.csrf_token


def client_ip(request: Request) -> str | None:
    """The browser's address; behind a trusted proxy, the first X-Forwarded-For entry."""
    if web_context(request).settings.web_trust_proxy:
        forwarded = request.headers.get("x-forwarded-for", "").split(",")[0].strip()
        if forwarded:
            return forwarded[:45]
    return request.client.host if request.client else None


def audit(request: Request, session: Session, action: str, outcome: str = "ok", *,
          subject: str | None = None, detail: dict[str, Any] | None = None,
          actor: str | None = None) -> None:
    """Write one audit_log row in `session` (commit it with the action it records): the
    signed-in operator as actor (or `actor` on the login page), the app's clock, and where
    it came from (`via: web`, `ip`). `subject` must already be masked (NIK: domain.nik.mask)."""
    who = actor or current_operator(request).actor
    extra = {"via": "web", "ip": client_ip(request)}
    repo.audit(session, who[:64], action[:32], outcome[:32],
               subject=subject[:64] if subject else None,
               detail={**(detail or {}), **extra}, at=now(request))


def flash(request: Request, text: str, level: str = "ok") -> None:
    """Show `text` on the next page this operator opens (after a redirect).
    level: ok | info | error."""
    session_id = current_operator(request).session_id
    with web_context(request).sessions.begin() as session:
        accounts.push_flash(session, session_id, level, text)


def take_flashes(request: Request) -> list[tuple[str, str]]:
    """The messages waiting for this page (removed from the session once shown)."""
    pending = getattr(request.state, "flash_pending", None)
    operator = getattr(request.state, "operator", None)
    if not pending or operator is None:
        return []
    with web_context(request).sessions.begin() as session:
        messages = accounts.take_flash(session, operator.session_id)
    request.state.flash_pending = []
    return [(str(level), str(text)) for level, text in messages]


def render(request: Request, template: str, context: dict[str, Any] | None = None,
           status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Render a template of web/templates with the layout's variables (operator, nav,
    csrf_token, csrf_field, flashes) added."""
    return web_context(request).templates.response(request, template, context or {},
                                                   status_code=status_code, headers=headers)


def redirect(path: str) -> RedirectResponse:
    """303 See Other: after a POST, the browser GETs `path` (post/redirect/get)."""
    return RedirectResponse(path, status_code=303)


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    secure = request.state.https
    response.headers.append("set-cookie", cookie_header(SESSION_COOKIE, token, secure=secure))


def clear_session_cookie(request: Request, response: Response) -> None:
    secure = request.state.https
    response.headers.append("set-cookie",
                            cookie_header(SESSION_COOKIE, "", secure=secure, max_age=0))
