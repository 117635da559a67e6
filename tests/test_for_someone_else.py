"""Registering a family member (issue 12 item 6): what is allowed is said first, and the
consent asked is the KPM's own."""

from __future__ import annotations

import pytest

from actions.registration import for_someone_else
from tests.chat_helpers import Chat


@pytest.mark.parametrize("text", [
    "sy mau daftarin ibu sy", "mau daftarkan suami prokus", "bisa daftar buat ortu sy?",
    "saya mau bantu daftar bapak saya", "daftarin emak dong kak", "mendaftarkan istri saya",
])
def test_registering_someone_else_is_recognised(text):
    assert for_someone_else(text)


@pytest.mark.parametrize("text", [
    "sy mau daftar", "daftar prokus", "ibu saya dapat pkh", "cara daftar gmn kak",
    "pendaftaran buka kapan", None,
])
def test_registering_oneself_is_not(text):
    assert not for_someone_else(text)


def test_the_helper_is_told_what_is_allowed_and_asked_for_the_kpms_consent(bot, texts):
    chat = Chat(bot).send("sy mau daftarin ibu sy")
    assert texts("registration_for_other").strip() in chat.text
    assert texts("registration_consent_other").strip() in chat.text
    assert texts("registration_consent").strip() not in chat.text
    chat.send("ya")  # the consent buttons work as usual
    assert "16 angka" in chat.text or "NIK" in chat.text


def test_registering_oneself_asks_the_usual_consent(bot, texts):
    chat = Chat(bot).send("/daftar")
    assert texts("registration_consent").strip() in chat.text
    assert texts("registration_for_other").strip() not in chat.text
