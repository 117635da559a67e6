"""The FAQ answers added for issue 12 item 7 (fraud, capital, duration, re-applying,
registering offline, PKH pendamping vs Prokus mentor, what a NIK is): reachable from a
parse, with next-step buttons, and "nik itu apa" asked at the NIK step is answered there."""

from __future__ import annotations

import pytest

from actions.faq import NEXT_STEPS
from nlu.client import Parse
from tests.chat_helpers import Chat

NEW_KEYS = ["faq/fraud", "faq/capital_disbursement", "faq/process_duration", "faq/reapply",
            "faq/register_offline", "faq/pkh_vs_prokus_mentor", "faq/what_is_nik"]


def faq_parse(key: str) -> Parse:
    return Parse("faq", 0.95,
                 response_selector={"faq": {"response": {"intent_response_key": key}}})


@pytest.mark.parametrize("key", NEW_KEYS)
def test_each_new_answer_is_given_with_its_next_steps(bot, nlu, texts, key):
    nlu.rules["pertanyaan"] = faq_parse(key)
    chat = Chat(bot).send("pertanyaan kak")
    assert chat.text == texts(key)
    assert chat.labels() == [texts(f"label/{s}") for s in NEXT_STEPS[key]]


def test_no_answer_promises_a_date_or_an_amount(texts):
    for key in ("faq/capital_disbursement", "faq/process_duration"):
        assert "tidak" in texts(key), "says plainly what the bot does not know"


def test_what_is_nik_at_the_nik_step_is_answered_and_the_step_asked_again(bot, nlu, texts):
    nlu.rules["nik itu apa"] = faq_parse("faq/what_is_nik")
    chat = Chat(bot).send("/cek").send("ya")
    chat.send("nik itu apa?")
    assert texts("faq/what_is_nik").strip() in chat.text
    assert texts("eligibility_ask_nik").strip() in chat.text
    chat.send("3201051203900001")
    assert texts("eligibility_ask_name").strip() in chat.text
