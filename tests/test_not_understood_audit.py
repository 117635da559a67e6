"""Turns the bot did not understand are counted (for the console's dashboard), without the
message text."""

from __future__ import annotations

from sqlalchemy import select

from db.engine import make_sessionmaker
from db.models import AuditLog
from tests.chat_helpers import Chat


def test_a_miss_is_audited_without_its_text_and_an_understood_turn_is_not(
        bot, sqlite_engine):
    chat = Chat(bot)
    chat.send("hmm rahasia 3201051203900001")  # the fake NLU: greet at 0.2 -> fallback
    chat.send("halo")
    with make_sessionmaker(sqlite_engine)() as session:
        rows = session.scalars(select(AuditLog).where(AuditLog.action == "not_understood")
                               ).all()
    assert [(r.actor.startswith("user:"), r.outcome) for r in rows] == [(True, "nlu_fallback")]
    stored = f"{rows[0].subject} {rows[0].detail}"
    assert "rahasia" not in stored and "3201051203900001" not in stored
