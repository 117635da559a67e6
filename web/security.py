"""Who is signed in, CSRF, cookies and security headers.

- `ConsoleMiddleware` runs on every request: it looks the session cookie up (one query),
  puts the operator (or None) and the request's CSRF token in `request.state`, closes the
  request's database session afterwards, and adds the security headers.
- `guard_routes` wraps every route of the route modules: without a session a route
  redirects to /login (unless marked `@public`), and every POST/PUT/PATCH/DELETE must carry
  the CSRF token, as the form field `csrf_token` or the `X-CSRF-Token` header (htmx sends
  the header, see static/app.js), unless marked `@csrf_exempt` (for machine endpoints that
  authenticate otherwise, such as a webhook with its own secret). A missing or wrong token
  gets 403.
- The CSRF token is an HMAC of the session token (of an anonymous random cookie before
  login), so it is per session, needs no storage and does not reveal the session token.
- `RequestLogMiddleware` logs one line per request (method, path, status, duration) through
  the project's redacting logging. It replaces uvicorn's access log, which prints the query
  string: a NIK search puts the NIK there, so the query string is never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, urlencode

import anyio.to_thread
from starlette.datastructures import FormData, Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from web.deps import WebContext

SESSION_COOKIE = "prokus_session"
ANON_COOKIE = "prokus_csrf"          # before login: the seed of the login form's CSRF token
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_FORM_FIELDS = 5000
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32,64}")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'; object-src 'none'")

E = TypeVar("E", bound=Callable[..., Any])


# ---------------------------------------------------------------------- route markers
def public(endpoint: E) -> E:
    """Mark a route as reachable without signing in (the login page)."""
    endpoint.prokus_public = True  # type: ignore[attr-defined]
    return endpoint


def csrf_exempt(endpoint: E) -> E:
    """Mark a route whose POSTs are not checked for the CSRF token: only for machine
    endpoints that authenticate each request themselves (never for a browser form)."""
    endpoint.prokus_csrf_exempt = True  # type: ignore[attr-defined]
    return endpoint


# ---------------------------------------------------------------------- tokens and cookies
def csrf_for(seed: str) -> str:
    """The CSRF token belonging to a session (or anonymous) cookie value."""
    return hmac.new(seed.encode("ascii"), b"prokus-console-csrf", hashlib.sha256).hexdigest()


def is_https(scope: Scope, trust_proxy: bool) -> bool:
    """True when the browser talks HTTPS to us: the request's own scheme, or the proxy's
    X-Forwarded-Proto when WEB_TRUST_PROXY says there is a trusted proxy in front."""
    if scope.get("scheme") == "https":
        return True
    if trust_proxy:
        forwarded = Headers(scope=scope).get("x-forwarded-proto", "")
        return forwarded.split(",")[0].strip().lower() == "https"
    return False


def cookie_header(name: str, value: str, *, secure: bool, max_age: int | None = None) -> str:
    """A Set-Cookie value: HttpOnly, SameSite=Lax, Path=/, Secure over HTTPS. Without
    max_age it is a browser-session cookie (the server decides when the session ends)."""
    jar: SimpleCookie = SimpleCookie()
    jar[name] = value
    morsel = jar[name]
    morsel["path"] = "/"
    morsel["httponly"] = True
    morsel["samesite"] = "Lax"
    if secure:
        morsel["secure"] = True
    if max_age is not None:
        morsel["max-age"] = max_age
    return morsel.OutputString()


def safe_next(target: str | None) -> str:
    """A local path to go to after login; anything else (another site, a scheme) is '/'."""
    if (not target or not target.startswith("/") or target.startswith(("//", "/\\"))
            or any(ch in target for ch in "\r\n\t")):
        return "/"
    return target


def login_redirect(scope: Scope) -> Response:
    """Send someone without a (valid) session to the login page, back here afterwards."""
    request = Request(scope)
    params: dict[str, str] = {}
    if request.method == "GET" and request.url.path != "/":
        params["next"] = request.url.path + (f"?{request.url.query}" if request.url.query
                                             else "")
    if scope["state"].get("session_ended"):
        params["pesan"] = "sesi_habis"
    url = "/login" + (f"?{urlencode(params)}" if params else "")
    if request.headers.get("hx-request") == "true":
        return Response(status_code=401, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


# ---------------------------------------------------------------------- middleware
access_log = logging.getLogger("prokus.web.access")


class RequestLogMiddleware:
    """One INFO line per HTTP request: method, path WITHOUT the query string, status and
    duration in ms (a request that raised is logged as 500, as the error page answers)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not access_log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_code = 500

        async def send_status(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            duration = round((time.perf_counter() - started) * 1000, 1)
            method, path = scope["method"], scope["path"]  # scope["path"] has no query
            access_log.info("%s %s %d %.1f ms", method, path, status_code, duration,
                            extra={"method": method, "path": path, "status": status_code,
                                   "duration_ms": duration})


class ConsoleMiddleware:
    """Identity, CSRF token, database-session clean-up and security headers for each request."""

    def __init__(self, app: ASGIApp, context: WebContext) -> None:
        self.app = app
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        static = scope["path"].startswith("/static/")
        https = is_https(scope, self.context.settings.web_trust_proxy)
        state.update(operator=None, flash_pending=[], https=https, session_ended=False)
        cookies: list[str] = []
        if not static:
            cookies = await self._identify(scope, state, https)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for value in cookies:
                    headers.append("set-cookie", value)
                _security_headers(headers, static=static, https=https,
                                  versioned="v=" in scope.get("query_string", b"").decode(
                                      "latin-1"))
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            session = state.pop("db", None)
            if session is not None:
                await anyio.to_thread.run_sync(session.close)

    async def _identify(self, scope: Scope, state: dict[str, Any], https: bool) -> list[str]:
        """Fill state.operator and state.csrf_token; return cookies to set or clear."""
        from web.deps import SignedIn

        cookies: list[str] = []
        jar = Request(scope).cookies
        token = jar.get(SESSION_COOKIE)
        if token and _TOKEN.fullmatch(token):
            found = await anyio.to_thread.run_sync(self.context.look_up_session, token)
            if found is not None:
                operator, session_id, flash = found
                state["operator"] = SignedIn(
                    id=operator.id, username=operator.username, role=operator.role,
                    region=operator.kode_wilayah, session_id=session_id)
                state["flash_pending"] = flash
                state["csrf_token"] = csrf_for(token)
                return cookies
            state["session_ended"] = True
        if token:  # unknown, expired or malformed: forget it
            cookies.append(cookie_header(SESSION_COOKIE, "", secure=https, max_age=0))
        seed = jar.get(ANON_COOKIE)
        if not seed or not _TOKEN.fullmatch(seed):
            seed = secrets.token_urlsafe(32)
            cookies.append(cookie_header(ANON_COOKIE, seed, secure=https))
        state["csrf_token"] = csrf_for(seed)
        return cookies


def _security_headers(headers: MutableHeaders, *, static: bool, https: bool,
                      versioned: bool) -> None:
    headers.setdefault("x-content-type-options", "nosniff")
    headers.setdefault("x-frame-options", "DENY")
    headers.setdefault("referrer-policy", "same-origin")
    headers.setdefault("content-security-policy", CSP)
    if https:
        headers.setdefault("strict-transport-security", "max-age=31536000")
    if static:
        headers.setdefault("cache-control", "public, max-age=31536000, immutable" if versioned
                           else "public, max-age=3600")
    else:  # pages show personal data: never keep them in a shared or browser cache
        headers.setdefault("cache-control", "no-store")


# ---------------------------------------------------------------------- the route guard
class RouteGuard:
    """Wraps one route's ASGI app: sign-in required unless @public, CSRF checked on every
    unsafe method unless @csrf_exempt. A urlencoded body is parsed once here (bounded) and
    handed on as `request.state.form` (see web.deps.form) and replayed to the endpoint."""

    def __init__(self, app: ASGIApp, endpoint: Callable[..., Any]) -> None:
        self.app = app
        self.public = getattr(endpoint, "prokus_public", False)
        self.csrf_exempt = getattr(endpoint, "prokus_csrf_exempt", False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope["state"]
        if not self.public and state.get("operator") is None:
            await login_redirect(scope)(scope, receive, send)
            return
        if scope["method"] not in SAFE_METHODS and not self.csrf_exempt:
            receive = await _check_csrf(scope, receive)
        await self.app(scope, receive, send)


async def _check_csrf(scope: Scope, receive: Receive) -> Receive:
    headers = Headers(scope=scope)
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    form: FormData | None = None
    if content_type == "application/x-www-form-urlencoded":
        body = await _read_body(receive)
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True,
                              max_num_fields=MAX_FORM_FIELDS)
        except (UnicodeDecodeError, ValueError) as exc:
            raise HTTPException(400, "bad_form") from exc
        form = FormData(pairs)
        scope["state"]["form"] = form
        receive = _replay(body, receive)
    sent = headers.get(CSRF_HEADER) or (form.get(CSRF_FIELD) if form is not None else None)
    expected = scope["state"].get("csrf_token")
    if not (isinstance(sent, str) and expected
            and hmac.compare_digest(sent.encode("utf-8", "replace"), expected.encode("ascii"))):
        raise HTTPException(403, "csrf")
    return receive


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HTTPException(400, "disconnected")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    done = False

    async def replay() -> Message:
        nonlocal done
        if not done:
            done = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def guard_routes(routes: Iterable[BaseRoute]) -> list[BaseRoute]:
    """Wrap every Route (also inside a Mount's routes) in a RouteGuard. Anything else is
    refused at start-up, so no page can be added without the sign-in and CSRF checks."""
    guarded: list[BaseRoute] = []
    for route in routes:
        if isinstance(route, Route):
            if not isinstance(route.app, RouteGuard):  # once, however many apps use it
                route.app = RouteGuard(route.app, route.endpoint)
        elif isinstance(route, Mount) and route.routes:
            guard_routes(route.routes)
        else:
            raise TypeError(f"route modules may only hold Route or Mount(routes=[...]), "
                            f"not {route!r}")
        guarded.append(route)
    return guarded
