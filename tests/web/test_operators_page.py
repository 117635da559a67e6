"""/operators: a supervisor adds and disables accounts; every action is audited."""

from __future__ import annotations

from sqlalchemy import select

from db.engine import make_sessionmaker
from db.models import Operator
from tests.web.conftest import PASSWORD


def operator(console, username: str) -> Operator | None:
    with make_sessionmaker(console.engine)() as session:
        return session.scalars(select(Operator).where(Operator.username == username)
                               ).one_or_none()


def add_form(**fields: str) -> dict[str, str]:
    return {"username": "siti", "role": "verifier", "region": "32.01", "password": PASSWORD,
            "password2": PASSWORD, **fields}


def test_a_supervisor_adds_an_account_that_can_log_in(console_any):
    console = console_any.signed_in("boss")
    response = console.post("/operators", add_form(username="Siti.Verif"), page="/operators")
    assert response.status_code == 303 and response.headers["location"] == "/operators"
    page = console.client.get("/operators")
    assert "Akun siti.verif ditambahkan" in page.text  # the flash, once
    assert "32.01" in page.text and "Verifikator" in page.text
    assert "ditambahkan" not in console.client.get("/operators").text
    added = operator(console, "siti.verif")
    assert (added.role, added.kode_wilayah, added.is_active) == ("verifier", "3201", True)
    assert PASSWORD not in added.password_hash and added.password_hash.startswith("$argon2id$")
    [row] = console.audit("operator_add")
    assert (row.actor, row.subject, row.outcome) == ("operator:boss", "operator:siti.verif", "ok")
    assert row.detail["role"] == "verifier" and row.detail["via"] == "web"

    console.client.cookies.clear()
    assert console.login("siti.verif").status_code == 303
    home = console.client.get("/")
    assert "Selamat datang, siti.verif" in home.text and "32.01" in home.text


def test_form_errors_are_shown_next_to_the_field_and_nothing_is_added(console):
    console.signed_in("boss")
    cases = [
        (add_form(username="x"), "Nama pengguna 3–32 karakter"),
        (add_form(username="boss"), "sudah dipakai"),
        (add_form(region="99.01"), "Kode wilayah tidak dikenal"),
        (add_form(role="admin"), "Pilih peran"),
        (add_form(password="pendek", password2="pendek"), "minimal 10 karakter"),
        (add_form(password2="lain-lain-lain"), "Kedua kata sandi tidak sama"),
    ]
    for data, message in cases:
        response = console.post("/operators", data, page="/operators")
        assert response.status_code == 400, data
        assert message in response.text, data
        assert 'aria-invalid="true"' in response.text
        assert PASSWORD not in response.text  # a password is never sent back
    assert operator(console, "siti") is None
    assert console.audit("operator_add") == []


def test_a_supervisor_disables_an_account(console):
    console.signed_in("boss")
    console.add("budi", role="coordinator")
    response = console.post("/operators/budi/disable", page="/operators")
    assert response.status_code == 303
    page = console.client.get("/operators")
    assert "Akun budi dinonaktifkan" in page.text and "Nonaktif" in page.text
    assert operator(console, "budi").is_active is False
    [row] = console.audit("operator_disable")
    assert (row.actor, row.subject) == ("operator:boss", "operator:budi")
    again = console.post("/operators/budi/disable", page="/operators")
    assert again.status_code == 303
    assert "sudah nonaktif" in console.client.get("/operators").text
    assert len(console.audit("operator_disable")) == 1


def test_a_supervisor_cannot_disable_themself_or_an_unknown_account(console):
    console.signed_in("boss")
    console.post("/operators/boss/disable", page="/operators")
    assert "akun Anda sendiri" in console.client.get("/operators").text
    console.post("/operators/tidakada/disable", page="/operators")
    assert "tidak ditemukan" in console.client.get("/operators").text
    assert operator(console, "boss").is_active is True
    assert console.audit("operator_disable") == []


def test_the_page_lists_locked_accounts(console):
    console.signed_in("boss")
    console.add("budi", role="verifier")
    other = type(console)(console.engine, console.clock)
    for _ in range(5):
        other.login("budi", "salah-salah-salah")
    assert "Terkunci s.d." in console.client.get("/operators").text
