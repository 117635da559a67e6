"""Login and logout.

Every failed login shows the same message (wrong password, unknown or disabled account,
locked account), so the page does not tell which usernames exist. Audit actions: `login`
(outcome ok | wrong_password | unknown | disabled | locked), `login_locked` (the 5th wrong
password in a row; the account is locked for 15 minutes) and `logout`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from db import operators as accounts
from web.deps import (
    audit,
    clear_session_cookie,
    current_operator,
    db,
    form,
    maybe_operator,
    now,
    public,
    redirect,
    render,
    set_session_cookie,
    web_context,
)
from web.security import safe_next

LOGIN_FAILED = ("Nama pengguna atau kata sandi salah, atau akun sedang dikunci sementara "
                "karena terlalu banyak percobaan. Coba lagi, atau hubungi supervisor.")
LOGIN_EMPTY = "Isi nama pengguna dan kata sandi."
NOTICES = {
    "keluar": "Anda sudah keluar. Sampai jumpa!",
    "sesi_habis": "Sesi Anda berakhir karena terlalu lama tidak aktif. Silakan masuk lagi.",
}


def _login_actor(username: str) -> str:
    name = accounts.normalise_username(username)
    return f"operator:{name}" if accounts.USERNAME_RE.fullmatch(name) else "operator:?"


@public
def login_page(request: Request) -> Response:
    """Show the login form (or go home when already signed in)."""
    if maybe_operator(request) is not None:
        return redirect("/")
    return render(request, "login.html", {
        "next": safe_next(request.query_params.get("next")),
        "notice": NOTICES.get(request.query_params.get("pesan", "")),
    })


@public
def login(request: Request) -> Response:
    """Check the password, count failures, start a session."""
    data = form(request)
    username = data.get("username", "")
    password = data.get("password", "")
    target = safe_next(data.get("next"))
    context = {"next": target, "username": username[:64]}
    if not username.strip() or not password:
        return render(request, "login.html", {**context, "error": LOGIN_EMPTY},
                      status_code=400)
    web = web_context(request)
    session = db(request)
    previous = maybe_operator(request)
    if previous is not None:  # a new login replaces the session this browser had
        accounts.end_session(session, previous.session_id)
    result = accounts.authenticate(session, username, password, now=now(request))
    actor = _login_actor(username)
    subject = f"operator:{accounts.normalise_username(username)}"
    audit(request, session, "login", result.outcome, actor=actor, subject=subject)
    if result.locked_now:
        audit(request, session, "login_locked", "locked", actor=actor, subject=subject,
              detail={"failed": accounts.MAX_FAILED_LOGINS,
                      "minutes": int(accounts.LOCKOUT.total_seconds() // 60)})
    token = None
    if result.ok:
        assert result.operator is not None
        token = accounts.start_session(session, result.operator, now=now(request),
                                       lifetime=web.lifetime, idle=web.idle)
    session.commit()
    if token is None:
        return render(request, "login.html", {**context, "error": LOGIN_FAILED},
                      status_code=400)
    response = redirect(target)
    set_session_cookie(request, response, token)
    return response


def logout(request: Request) -> Response:
    """End this session (POST with the CSRF token, so no other site can log anyone out)."""
    operator = current_operator(request)
    session = db(request)
    accounts.end_session(session, operator.session_id)
    audit(request, session, "logout", "ok", subject=f"operator:{operator.username}")
    session.commit()
    response = redirect("/login?pesan=keluar")
    clear_session_cookie(request, response)
    return response


routes = [
    Route("/login", login_page, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
]
