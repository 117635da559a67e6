"""The ASGI app of the operator console: `create_app(settings)`; `prokus serve` runs it."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from bot.settings import Settings
from db import import_jobs
from db.engine import make_engine, make_sessionmaker
from web.deps import WebContext, render, utc_now
from web.routes import all_routes
from web.security import ConsoleMiddleware, RequestLogMiddleware, login_redirect
from web.templating import STATIC, Templates

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
               clock: Callable[[], datetime] | None = None) -> Starlette:
    """Build the console. Pass `engine` to share one (tests; the caller disposes of it),
    otherwise one is made from DATABASE_URL and disposed of at shutdown. `clock` returns
    an aware datetime (tests move it)."""
    own_engine = engine is None
    engine = engine if engine is not None else make_engine(settings.database_url)
    context = WebContext(settings=settings, engine=engine, sessions=make_sessionmaker(engine),
                         clock=clock or utc_now, templates=Templates())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # A registry import left running by a process that died is marked failed at once.
        with context.sessions.begin() as session:
            import_jobs.recover_stale(session, now=context.clock())
        try:
            yield
        finally:
            if own_engine:
                engine.dispose()

    app = Starlette(
        routes=[Mount("/static", StaticFiles(directory=STATIC), name="static"), *all_routes()],
        middleware=[Middleware(RequestLogMiddleware),
                    Middleware(ConsoleMiddleware, context=context)],
        exception_handlers={HTTPException: http_error, Exception: server_error},
        lifespan=lifespan,
        max_body_size=MAX_BODY_BYTES,
    )
    app.state.web = context
    return app


def app_from_env() -> Starlette:
    """The app factory of `prokus serve --workers N` (uvicorn imports it by name in each
    worker process): read the settings from the environment, set up the redacting logging
    and build this worker's app with its own engine (disposed of at shutdown)."""
    from bot.logging import configure_logging

    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_json)
    return create_app(settings)


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
