"""The console's security rules over HTTP: sign-in, CSRF, lockout, idle expiry, roles,
cookies, headers and escaping."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from db.engine import make_sessionmaker
from db.models import Operator, OperatorSession
from tests.web.conftest import PASSWORD, Console, csrf_in
from web.routes.auth import LOGIN_FAILED


def session_cookie(response) -> str:
    [value] = [c for c in response.headers.get_list("set-cookie")
               if c.startswith("prokus_session=")]
    return value


def sessions_in_db(console: Console) -> int:
    with make_sessionmaker(console.engine)() as session:
        return session.scalar(select(func.count()).select_from(OperatorSession))


# ---------------------------------------------------------------------- no session
@pytest.mark.parametrize("path", ["/", "/operators", "/tidak-ada-halaman"])
def test_without_a_session_a_page_redirects_to_login(console, path):
    response = console.client.get(path)
    if path == "/tidak-ada-halaman":  # no route: the friendly 404, without a menu
        assert response.status_code == 404
        assert "Halaman tidak ditemukan" in response.text and "Keluar" not in response.text
        return
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")
    if path != "/":
        assert response.headers["location"] == f"/login?next=%2F{path[1:]}"


def test_htmx_requests_without_a_session_are_sent_to_login_by_header(console):
    response = console.client.get("/operators", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/login?next=%2Foperators"


def test_a_post_without_a_session_does_nothing_and_redirects(console):
    token = console.csrf()
    response = console.client.post("/operators", data={"username": "x", "csrf_token": token})
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert console.audit("operator_add") == []


def test_login_goes_back_to_the_page_asked_for_but_never_to_another_site(console):
    console.add("budi")
    for wanted, landed in [("/operators", "/operators"), ("//evil.example/x", "/"),
                           ("https://evil.example", "/"), ("/\\evil.example", "/")]:
        console.client.cookies.clear()
        token = console.csrf(f"/login?next={wanted}")
        response = console.client.post("/login", data={
            "username": "budi", "password": PASSWORD, "csrf_token": token, "next": wanted})
        assert response.status_code == 303
        assert response.headers["location"] == landed


def test_static_files_and_the_login_page_need_no_session(console):
    script = console.client.get("/static/vendor/htmx.min.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert console.client.get("/static/vendor/htmx.LICENSE").status_code == 200
    assert console.client.get("/login").status_code == 200


# ---------------------------------------------------------------------- CSRF
def test_login_post_without_or_with_a_wrong_csrf_token_is_refused(console):
    console.add("budi")
    console.csrf()  # the anonymous CSRF cookie is set
    data = {"username": "budi", "password": PASSWORD}
    for extra in ({}, {"csrf_token": "0" * 64}, {"csrf_token": ""}):
        response = console.client.post("/login", data={**data, **extra})
        assert response.status_code == 403
        assert "Formulir kedaluwarsa" in response.text
    assert console.audit("login") == []  # refused before the password was looked at


def test_every_post_needs_the_session_token(console):
    console.signed_in("budi")
    token = console.csrf("/")
    assert console.client.post("/logout").status_code == 403
    assert console.client.post("/logout", data={"csrf_token": "x" * 64}).status_code == 403
    assert console.client.post("/logout", headers={"X-CSRF-Token": "x" * 64}).status_code == 403
    assert console.client.post("/logout", json={"csrf_token": token}).status_code == 403
    assert console.client.get("/").status_code == 200  # still signed in
    # the htmx way: the token in the X-CSRF-Token header
    response = console.client.post("/logout", headers={"X-CSRF-Token": token})
    assert response.status_code == 303 and response.headers["location"] == "/login?pesan=keluar"


def test_the_token_of_one_session_does_not_work_for_another(console, clock):
    console.signed_in("budi")
    token_before = console.csrf("/")
    console.client.cookies.clear()
    assert console.login("budi").status_code == 303  # a new session
    assert console.csrf("/") != token_before
    response = console.client.post("/logout", data={"csrf_token": token_before})
    assert response.status_code == 403


def test_a_token_from_before_login_is_not_the_session_token(console):
    console.add("budi")
    anonymous = console.csrf("/login")
    console.login("budi")
    assert console.client.post("/logout", data={"csrf_token": anonymous}).status_code == 403


# ---------------------------------------------------------------------- login and logout
def test_logout_ends_the_session_server_side(console):
    console.signed_in("budi")
    old_cookie = console.client.cookies.get("prokus_session")
    response = console.post("/logout")
    assert response.status_code == 303
    assert "Max-Age=0" in session_cookie(response)
    assert sessions_in_db(console) == 0
    console.client.cookies.set("prokus_session", old_cookie)  # a stolen copy is worthless
    assert console.client.get("/").status_code == 303
    [row] = console.audit("logout")
    assert row.actor == "operator:budi"
    page = console.client.get("/login?pesan=keluar")
    assert "Anda sudah keluar" in page.text


def test_every_failure_shows_the_same_message(console):
    console.add("budi")
    console.add("lama", role="verifier")
    console.signed_in("boss")
    console.post("/operators/lama/disable", page="/operators")
    console.client.cookies.clear()
    for username, password in [("budi", "salah-salah-salah"), ("tidakada", PASSWORD),
                               ("lama", PASSWORD), ("<b>x</b>", PASSWORD)]:
        response = console.login(username, password)
        assert response.status_code == 400
        assert LOGIN_FAILED in response.text
    outcomes = [(r.actor, r.outcome) for r in console.audit("login")]
    assert outcomes[-4:] == [("operator:budi", "wrong_password"),
                             ("operator:tidakada", "unknown"), ("operator:lama", "disabled"),
                             ("operator:?", "unknown")]


def test_lockout_after_five_wrong_passwords_is_audited_and_lifts_after_15_minutes(
        console_any, clock):
    console = console_any
    console.add("budi", role="verifier")
    for attempt in range(1, 6):
        response = console.login("budi", f"salah-{attempt}-kali!")
        assert response.status_code == 400 and LOGIN_FAILED in response.text
    [lock] = console.audit("login_locked")
    assert (lock.actor, lock.outcome, lock.subject) == ("operator:budi", "locked", "operator:budi")
    assert lock.detail["failed"] == 5 and lock.detail["minutes"] == 15

    clock.now += timedelta(minutes=14, seconds=59)
    response = console.login("budi", PASSWORD)  # the right password, still locked
    assert response.status_code == 400 and LOGIN_FAILED in response.text
    assert "prokus_session" not in response.headers.get("set-cookie", "")
    assert console.audit("login")[-1].outcome == "locked"

    clock.now += timedelta(seconds=1)
    response = console.login("budi", PASSWORD)
    assert response.status_code == 303
    assert console.client.get("/").status_code == 200
    outcomes = [r.outcome for r in console.audit("login")]
    assert outcomes == ["wrong_password"] * 5 + ["locked", "ok"]
    assert len(console.audit("login_locked")) == 1


def test_a_right_password_resets_the_count_of_wrong_ones(console):
    console.add("budi")
    for _ in range(4):
        console.login("budi", "salah-salah-salah")
    assert console.login("budi").status_code == 303
    console.client.cookies.clear()
    for _ in range(4):
        console.login("budi", "salah-salah-salah")
    assert console.login("budi").status_code == 303  # not locked: the count started again
    assert console.audit("login_locked") == []


def test_locking_one_account_does_not_lock_another(console):
    console.add("budi")
    console.add("siti")
    for _ in range(5):
        console.login("budi", "salah-salah-salah")
    assert console.login("siti").status_code == 303


# ---------------------------------------------------------------------- idle expiry
def test_a_session_ends_after_30_idle_minutes(console_any, clock):
    console = console_any.signed_in("budi")
    clock.now += timedelta(minutes=29)
    assert console.client.get("/").status_code == 200
    clock.now += timedelta(minutes=29)  # 58 minutes after login, 29 after the last request
    assert console.client.get("/").status_code == 200
    clock.now += timedelta(minutes=30)
    response = console.client.get("/operators")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Foperators&pesan=sesi_habis"
    assert "Max-Age=0" in session_cookie(response)
    assert sessions_in_db(console) == 0
    page = console.client.get(response.headers["location"])
    assert "terlalu lama tidak aktif" in page.text


def test_the_idle_timeout_is_a_setting(sqlite_engine, clock):
    console = Console(sqlite_engine, clock, web_idle_minutes=5).signed_in("budi")
    clock.now += timedelta(minutes=4)
    assert console.client.get("/").status_code == 200
    clock.now += timedelta(minutes=5)
    assert console.client.get("/").status_code == 303


def test_a_session_ends_after_its_lifetime_however_busy(sqlite_engine, clock):
    console = Console(sqlite_engine, clock, web_session_hours=2).signed_in("budi")
    for _ in range(5):
        clock.now += timedelta(minutes=20)
        assert console.client.get("/").status_code == 200
    clock.now += timedelta(minutes=20)  # 2 hours after login
    assert console.client.get("/").status_code == 303


def test_disabling_an_account_ends_its_session_at_once(console):
    console.signed_in("boss")
    other = Console(console.engine, console.clock).signed_in("budi", role="verifier")
    assert other.client.get("/").status_code == 200
    assert console.post("/operators/budi/disable", page="/operators").status_code == 303
    assert other.client.get("/").status_code == 303


# ---------------------------------------------------------------------- roles
@pytest.mark.parametrize("role", ["verifier", "coordinator"])
def test_only_supervisors_manage_accounts(console, role):
    console.signed_in("budi", role=role, region="32.01" if role == "verifier" else None)
    page = console.client.get("/operators")
    assert page.status_code == 403
    assert "Akses ditolak" in page.text and "Keluar" in page.text  # friendly, with the menu
    home = console.client.get("/")
    assert 'href="/operators"' not in home.text  # no menu entry for a page it cannot open
    response = console.post("/operators", {"username": "baru", "role": "supervisor",
                                           "password": PASSWORD, "password2": PASSWORD})
    assert response.status_code == 403
    assert console.post("/operators/budi/disable").status_code == 403
    with make_sessionmaker(console.engine)() as session:
        assert session.scalar(select(func.count()).select_from(Operator)) == 1


def test_a_supervisor_sees_the_accounts_page(console):
    console.signed_in("boss")
    page = console.client.get("/operators")
    assert page.status_code == 200 and "Akun operator" in page.text
    assert 'href="/operators" aria-current="page"' in page.text


# ---------------------------------------------------------------------- cookies and headers
def test_the_session_cookie_is_httponly_lax_and_not_secure_over_http(console):
    console.add("budi")
    cookie = session_cookie(console.login("budi"))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie and "Max-Age" not in cookie and "expires" not in cookie


def test_the_session_cookie_is_secure_over_https(sqlite_engine, clock):
    console = Console(sqlite_engine, clock, base_url="https://testserver")
    console.add("budi")
    response = console.login("budi")
    assert "Secure" in session_cookie(response)
    assert response.headers["strict-transport-security"].startswith("max-age=")
    assert console.client.get("/").status_code == 200


def test_x_forwarded_proto_counts_only_when_the_proxy_is_trusted(sqlite_engine, clock):
    plain = Console(sqlite_engine, clock)
    plain.add("budi")
    cookie = session_cookie(plain.login("budi", **{"X-Forwarded-Proto": "https"}))
    assert "Secure" not in cookie
    trusted = Console(sqlite_engine, clock, web_trust_proxy=True)
    cookie = session_cookie(trusted.login("budi", **{"X-Forwarded-Proto": "https"}))
    assert "Secure" in cookie


def test_pages_carry_the_security_headers(console):
    console.signed_in("budi")
    response = console.client.get("/")
    headers = response.headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "no-store"
    assert "<script>" not in response.text  # no inline script (the CSP would block it)


def test_a_body_over_the_limit_is_refused(console):
    console.signed_in("budi")
    token = console.csrf("/")
    response = console.client.post("/logout", content=b"a=" + b"x" * (1024 * 1024 + 1),
                                   headers={"content-type": "application/x-www-form-urlencoded",
                                            "X-CSRF-Token": token})
    assert response.status_code == 413


# ---------------------------------------------------------------------- escaping and errors
def test_html_typed_by_a_user_is_shown_escaped(console):
    evil = '<script>alert("x")</script>'
    response = console.login(evil, PASSWORD)
    assert response.status_code == 400
    assert evil not in response.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in response.text
    console.signed_in("boss")
    page = console.post("/operators", {"username": evil, "role": "verifier",
                                       "region": '"><img src=x onerror=alert(1)>',
                                       "password": PASSWORD, "password2": PASSWORD},
                        page="/operators")
    assert page.status_code == 400
    assert evil not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;" in page.text


def test_unknown_pages_get_the_friendly_404_with_the_menu(console):
    console.signed_in("budi")
    response = console.client.get("/registrations/PRK-2026-999999<b>")
    assert response.status_code == 404
    assert "Halaman tidak ditemukan" in response.text and "Kembali ke dasbor" in response.text
    assert "<b>" not in response.text
    assert 'lang="id"' in response.text


def test_a_get_to_a_post_only_route_is_a_friendly_405(console):
    console.signed_in("budi")
    response = console.client.get("/logout")
    assert response.status_code == 405 and "Buka halaman ini dari menu" in response.text


def test_an_unreadable_form_is_a_400(console):
    console.signed_in("budi")
    token = console.csrf("/")
    response = console.client.post("/logout", content=b"csrf_token=\xff\xfe",
                                   headers={"content-type": "application/x-www-form-urlencoded",
                                            "X-CSRF-Token": token})
    assert response.status_code == 400


def test_the_login_page_of_a_signed_in_operator_goes_home(console):
    console.signed_in("budi")
    response = console.client.get("/login")
    assert response.status_code == 303 and response.headers["location"] == "/"
    assert csrf_in(console.client.get("/").text)
