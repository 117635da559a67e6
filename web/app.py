"""The ASGI app of the operator console: `create_app(settings)`; `prokus serve` runs it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from bot.settings import Settings
from db import import_jobs
from db.engine import make_engine, make_sessionmaker
from web.deps import WebContext, render, utc_now
from web.routes import all_routes
from web.security import ConsoleMiddleware, RequestLogMiddleware, login_redirect
from web.templating import STATIC, Templates

if TYPE_CHECKING:
    from bot.webhook import WebhookService

log = logging.getLogger("prokus.web")

# Request bodies larger than this get 413; an upload route raises it for itself with
# Route(..., max_body_size=...).
MAX_BODY_BYTES = 1024 * 1024

ERRORS = {  # status or detail -> (title, explanation), shown on the error page
    400: ("Permintaan tidak bisa dibaca", "Isi formulir tidak terbaca. Muat ulang halaman "
          "lalu coba lagi."),
    403: ("Akses ditolak", "Akun Anda tidak punya hak untuk membuka halaman ini. Hubungi "
          "supervisor bila Anda memerlukannya."),
    "csrf": ("Formulir kedaluwarsa", "Formulir ini sudah tidak berlaku atau tidak dikirim "
             "dari konsol. Muat ulang halaman lalu coba lagi."),
    404: ("Halaman tidak ditemukan", "Alamat ini tidak ada, atau datanya sudah tidak "
          "tersedia. Periksa kembali alamatnya atau kembali ke dasbor."),
    405: ("Cara membuka halaman tidak didukung", "Buka halaman ini dari menu konsol."),
    413: ("Kiriman terlalu besar", "Data yang dikirim melebihi batas. Kirim bagian yang "
          "lebih kecil."),
    415: ("Formulir tidak dikenali", "Kirim data lewat formulir di halaman konsol."),
}
GENERIC_ERROR = ("Terjadi kesalahan", "Permintaan tidak dapat diproses. Coba lagi sebentar "
                 "lagi.")


def create_app(settings: Settings, *, engine: Engine | None = None,
               clock: Callable[[], datetime] | None = None, console: bool = True,
               webhook: WebhookService | None = None) -> Starlette:
    """Build the console. Pass `engine` to share one (tests; the caller disposes of it),
    otherwise one is made from DATABASE_URL and disposed of at shutdown. `clock` returns
    an aware datetime (tests move it).

    `/healthz`, `/readyz` and `/metrics` are always there (no login, no personal data;
    /metrics wants `Authorization: Bearer <PROKUS_METRICS_TOKEN>` when that is set). With `webhook`
    (a bot.webhook.WebhookService) `POST /telegram/webhook` feeds the Telegram bot, started
    and stopped with the app; with `console=False` the console's pages are not served."""
    own_engine = engine is None
    engine = engine if engine is not None else make_engine(settings.database_url)
    context = WebContext(settings=settings, engine=engine, sessions=make_sessionmaker(engine),
                         clock=clock or utc_now, templates=Templates())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # A registry import left running by a process that died is marked failed at once.
        if console:
            with context.sessions.begin() as session:
                import_jobs.recover_stale(session, now=context.clock())
        try:
            if webhook is not None:
                await webhook.start(engine)
            try:
                yield
            finally:
                if webhook is not None:
                    await webhook.stop()
        finally:
            if own_engine:
                engine.dispose()

    service = service_app(engine, webhook, metrics_token=metrics_token(settings))
    app = Starlette(
        routes=[Mount("/static", StaticFiles(directory=STATIC), name="static"), *all_routes()],
        middleware=[Middleware(RequestLogMiddleware),
                    Middleware(ServiceRoutes, service=service, console=console),
                    Middleware(ConsoleMiddleware, context=context)],
        exception_handlers={HTTPException: http_error, Exception: server_error},
        lifespan=lifespan,
        max_body_size=MAX_BODY_BYTES,
    )
    app.state.web = context
    app.state.webhook = webhook
    return app


# ---------------------------------------------------------------------- service endpoints
HEALTH_TIMEOUT = 3.0  # seconds for each readiness probe


class ServiceRoutes:
    """Sends the service endpoints (health checks, the Telegram webhook) to their own small
    app, past the console's sign-in, CSRF and cookies; the rest goes to the console, or
    gets a plain 404 when the console is off on this instance."""

    def __init__(self, app: ASGIApp, service: Starlette, console: bool) -> None:
        self.app = app
        self.service = service
        self.console = console
        self.paths = {route.path for route in service.routes}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if scope["path"] in self.paths:
                await self.service(scope, receive, send)
                return
            if not self.console:
                await PlainTextResponse("Not Found", status_code=404)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def metrics_token(settings: Settings) -> str | None:
    """The bearer token /metrics asks for: PROKUS_METRICS_TOKEN (None: no token needed)."""
    return settings.metrics_token


def service_app(engine: Engine, webhook: WebhookService | None,
                metrics_token: str | None = None) -> Starlette:
    """/healthz, /readyz, /metrics and (with a webhook) POST /telegram/webhook."""
    from bot import metrics

    figures = metrics.DatabaseFigures(make_sessionmaker(engine))

    async def healthz(request: Request) -> Response:
        """The process is up (no database, no NLU)."""
        return JSONResponse({"status": "ok"}, headers={"cache-control": "no-store"})

    def database_ok() -> bool:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True

    async def probe(check: Callable[[], bool | None]) -> bool | None:
        try:
            return await asyncio.wait_for(asyncio.to_thread(check), HEALTH_TIMEOUT)
        except Exception:
            return False

    async def readyz(request: Request) -> Response:
        """The database answers, and (in webhook mode) an NLU server answers: 200, else 503
        naming what is down."""
        checks = {"database": await probe(database_ok)}
        if webhook is not None:
            checks["nlu"] = await probe(webhook.nlu_ready)
        shown = {name: "ok" if ok else ("not used" if ok is None else "down")
                 for name, ok in checks.items()}
        down = [name for name, ok in checks.items() if ok is False]
        body = {"status": "not ready" if down else "ready", **shown}
        if down:
            body["down"] = down
        return JSONResponse(body, status_code=503 if down else 200,
                            headers={"cache-control": "no-store"})

    async def metrics_page(request: Request) -> Response:
        """Prometheus text exposition of this process (all workers of the instance in
        multiprocess mode) and the database figures; 403 without the token when one is
        set."""
        if not metrics.authorised(request.headers.get("authorization"), metrics_token):
            return PlainTextResponse("Forbidden", status_code=403,
                                     headers={"cache-control": "no-store"})
        body = await asyncio.to_thread(metrics.render, figures)
        return Response(body, media_type=metrics.CONTENT_TYPE,
                        headers={"cache-control": "no-store"})

    routes = [Route("/healthz", healthz, methods=["GET", "HEAD"]),
              Route("/readyz", readyz, methods=["GET", "HEAD"]),
              Route("/metrics", metrics_page, methods=["GET"])]
    if webhook is not None:
        from bot.webhook import PATH

        routes.append(Route(PATH, webhook.handle, methods=["POST"]))
    return Starlette(routes=routes)


def app_from_env() -> Starlette:
    """The app factory of `prokus serve --workers N` (uvicorn imports it by name in each
    worker process): read the settings from the environment, set up the redacting logging
    and build this worker's app with its own engine (disposed of at shutdown)."""
    import atexit
    import multiprocessing
    import os

    from bot import metrics
    from bot.logging import configure_logging

    # uvicorn's worker processes (children of `prokus serve`) share one metrics directory,
    # so /metrics, answered by whichever worker gets the scrape, shows the sum of them all.
    if (multiprocessing.parent_process() is not None
            or os.environ.get(metrics.MULTIPROC_ENV)) and metrics.use_multiprocess_dir():
        atexit.register(metrics.mark_process_dead)
    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_json)
    webhook = None
    if os.environ.get("PROKUS_SERVE_WEBHOOK") == "1":  # set by `prokus serve --webhook`
        from bot.webhook import WebhookService

        webhook = WebhookService(settings,
                                 with_worker=os.environ.get("PROKUS_SERVE_WORKER") == "1")
    return create_app(settings, console=os.environ.get("PROKUS_SERVE_CONSOLE", "1") != "0",
                      webhook=webhook)


def http_error(request: Request, exc: Exception) -> Response:
    """The friendly page for 403, 404 and the other HTTP errors."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 401:
        return login_redirect(request.scope)
    title, text = ERRORS.get(exc.detail) or ERRORS.get(exc.status_code) or GENERIC_ERROR
    return render(request, "error.html", {"title": title, "text": text,
                                          "status": exc.status_code},
                  status_code=exc.status_code, headers=exc.headers)


def server_error(request: Request, exc: Exception) -> Response:
    """A plain page for a bug or an outage (no database, no template that could fail too)."""
    log.error("console request failed: %s %s", request.method, request.url.path,
              exc_info=exc)
    title, text = GENERIC_ERROR
    return HTMLResponse(
        f'<!doctype html><html lang="id"><meta charset="utf-8"><title>{title}</title>'
        f'<link rel="stylesheet" href="/static/app.css"><main class="error-page"><h1>{title}'
        f'</h1><p>{text}</p><p><a href="/">Kembali ke dasbor</a></p></main></html>',
        status_code=500)
