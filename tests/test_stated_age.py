"""A stated age in the question that starts the check (issue 12 item 7): "klo udh umur 41 bs
ikut gk" gets a plain no at once, an age under 40 is acknowledged and the check starts."""

from __future__ import annotations

import pytest

from nlu.client import Entity, Parse
from tests.chat_helpers import Chat


def eligibility_question(nlu, text: str, age: str | None) -> None:
    entities = (Entity("age", age),) if age is not None else ()
    nlu.rules[text] = Parse("check_eligibility", 0.97, entities=entities)


@pytest.mark.parametrize("age", ["40", "41", "57"])
def test_forty_or_more_is_told_no_plainly_without_asking_for_a_nik(bot, nlu, texts, age):
    eligibility_question(nlu, "bs ikut gk", age)
    chat = Chat(bot).send("klo udh umur xx bs ikut gk")
    assert texts("eligibility_age_over", age=int(age)).strip() in chat.text
    assert f"usia {age} tahun Anda belum bisa ikut" in chat.text
    assert texts("eligibility_consent").strip() not in chat.text
    assert "Kenapa di bawah 40 tahun?" in chat.labels()
    chat.send("1234")  # no form is running: a number is not taken as a NIK
    assert "NIK" not in chat.text or texts("eligibility_ask_name").strip() not in chat.text


def test_under_forty_is_acknowledged_and_the_check_starts(bot, nlu, texts):
    eligibility_question(nlu, "bs ikut gk", "35")
    chat = Chat(bot).send("umur sy 35 bs ikut gk")
    assert texts("eligibility_age_ok", age=35).strip() in chat.text
    assert texts("eligibility_consent").strip() in chat.text


@pytest.mark.parametrize("age", [None, "5", "150", "abc"])
def test_no_or_implausible_age_starts_the_check_as_usual(bot, nlu, texts, age):
    eligibility_question(nlu, "bs ikut gk", age)
    chat = Chat(bot).send("anak sy bs ikut gk")
    assert texts("eligibility_consent").strip() in chat.text
    assert "belum bisa ikut Prokus" not in chat.text
