"""End to end in headless Chromium against a live `prokus serve`: log in, the home page, a
wrong password, logout; screenshots go to results/screenshots/."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def test_login_home_wrong_password_and_logout(live_server, browser_page, screenshots):
    page = browser_page
    url = live_server.url

    page.goto(f"{url}/operators")  # no session: to the login page, then back here
    page.wait_for_url(f"{url}/login?next=%2Foperators")
    assert page.locator("h1").inner_text() == "Masuk ke konsol"
    page.screenshot(path=str(screenshots / "login.png"), full_page=True)

    page.fill("#username", live_server.username)
    page.fill("#password", "bukan-kata-sandinya")
    page.click("button[type=submit]")
    error = page.locator("#login-error")
    assert "Nama pengguna atau kata sandi salah" in error.inner_text()
    assert page.input_value("#username") == live_server.username
    page.screenshot(path=str(screenshots / "login-error.png"), full_page=True)

    page.fill("#password", live_server.password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/operators")
    assert page.locator("h1").inner_text() == "Akun operator"
    page.screenshot(path=str(screenshots / "operators.png"), full_page=True)

    page.click("nav.mainnav >> text=Dasbor")
    page.wait_for_url(f"{url}/")
    assert page.locator("h1").inner_text() == f"Selamat datang, {live_server.username}"
    assert page.evaluate("typeof htmx") == "object"  # the vendored htmx loaded (no CDN)
    page.screenshot(path=str(screenshots / "home.png"), full_page=True)

    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scroll
    page.screenshot(path=str(screenshots / "home-phone.png"), full_page=True)
    page.goto(f"{url}/operators")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(screenshots / "operators-phone.png"), full_page=True)
    page.set_viewport_size({"width": 1366, "height": 768})

    page.click("text=Keluar")
    page.wait_for_url(f"{url}/login?pesan=keluar")
    assert "Anda sudah keluar" in page.content()
    page.goto(f"{url}/")
    page.wait_for_url(f"{url}/login")  # the session is gone


def test_a_post_needs_the_token_and_htmx_sends_it(live_server, browser_page):
    """A POST without the token (as another site would send it) gets 403; an htmx request
    carries the token in its header by itself (static/app.js) and goes through."""
    page = browser_page
    live_server.login(page)
    status = page.evaluate("""async () => {
        const response = await fetch('/logout', {method: 'POST',
            headers: {'Content-Type': 'application/x-www-form-urlencoded'}, body: 'x=1'});
        return response.status;
    }""")
    assert status == 403
    page.goto(f"{live_server.url}/")
    assert "Selamat datang" in page.content()  # still signed in

    page.evaluate("htmx.ajax('POST', '/logout', {target: 'main', select: 'main'})")
    page.wait_for_selector("text=Anda sudah keluar")
    page.goto(f"{live_server.url}/")
    page.wait_for_url(f"{live_server.url}/login")  # the htmx POST ended the session


def test_a_supervisor_adds_and_disables_an_account(live_server, browser_page, screenshots):
    """The form, the flash after the redirect, and the confirm dialog before disabling."""
    page = browser_page
    live_server.login(page)
    page.goto(f"{live_server.url}/operators")
    page.fill("#username", "siti")
    page.select_option("#role", "verifier")
    page.fill("#region", "32.01")
    page.fill("#password", "kata-sandi-siti")
    page.fill("#password2", "kata-sandi-siti")
    page.click("text=Tambah akun >> nth=-1")
    page.wait_for_selector(".flash-ok")
    assert "Akun siti ditambahkan" in page.inner_text(".flash-ok")
    row = page.locator("tr", has_text="siti")
    assert "32.01" in row.inner_text() and "Aktif" in row.inner_text()

    page.once("dialog", lambda dialog: dialog.dismiss())  # "no": nothing happens
    row.locator("text=Nonaktifkan").click()
    assert "Aktif" in page.locator("tr", has_text="siti").inner_text()
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("tr", has_text="siti").locator("text=Nonaktifkan").click()
    page.wait_for_selector(".flash-ok")
    assert "dinonaktifkan" in page.inner_text(".flash-ok")
    assert "Nonaktif" in page.locator("tr", has_text="siti").inner_text()
    page.screenshot(path=str(screenshots / "operators-disabled.png"), full_page=True)
