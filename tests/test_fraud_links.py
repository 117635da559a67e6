"""A link that is not an official *.go.id site gets the fraud warning, whatever the NLU
would make of the sentence (issue 12 item 7: "ada link prokus-daftar.com bener gk" once
started a registration)."""

from __future__ import annotations

import pytest

from actions.faq import unofficial_links
from tests.chat_helpers import Chat


@pytest.mark.parametrize(("text", "hosts"), [
    ("ada link prokus-daftar.com bener gk", ["prokus-daftar.com"]),
    ("https://bit.ly/3xYz daftar prokus", ["bit.ly"]),
    ("wa.me/62812345 ngaku admin", ["wa.me"]),
    ("www.prokus.id resmi?", ["prokus.id"]),
    ("kemensos.go.id.daftar-prokus.xyz asli?", ["kemensos.go.id.daftar-prokus.xyz"]),
    ("PROKUS-BANTUAN.COM", ["prokus-bantuan.com"]),
])
def test_unofficial_links_are_found(text, hosts):
    assert unofficial_links(text) == hosts


@pytest.mark.parametrize("text", [
    "cek di kemensos.go.id", "https://cekbansos.kemensos.go.id/", "email sy budi@gmail.com",
    "nama sy Moh. Yusuf", "sudah 3 thn.", "sy mau daftar. ok", "Jl. Merdeka no.5",
])
def test_official_sites_and_ordinary_text_are_not_links(text):
    assert unofficial_links(text) == []


def test_a_suspicious_link_gets_the_fraud_warning_without_asking_the_nlu(bot, nlu, texts):
    chat = Chat(bot).send("ada link prokus-daftar.com buat daftar, bener gk")
    assert chat.text == texts("faq/fraud")
    assert "Laporkan masalah" in chat.labels()
    assert nlu.seen == [], "decided before the NLU"


def test_an_official_link_is_left_to_the_nlu(bot, nlu):
    Chat(bot).send("info di kemensos.go.id itu apa")
    assert nlu.seen == ["info di kemensos.go.id itu apa"]
