"""Issue 16 item 3: retention. Unfinished forms are cleared after 7 days (configurable) and
the user is told at their next message; handoff and not-understood texts go after 90 days,
outbox texts 30 days after delivery (the delivery records stay), audit rows after 5 years;
`prokus retention run [--dry-run]` reports each count; the bot runs it daily."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from bot.cli import main
from bot.cli_privacy import LABELS
from db import retention
from db.engine import make_sessionmaker
from db.models import (
    AuditLog,
    Conversation,
    HandoffMessage,
    HandoffTicket,
    NikAttempt,
    NluMiss,
    OutboxItem,
    OutboxMessage,
    User,
)
from tests.chat_helpers import Chat

NOW = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
BUDI = "3201051203900001"


def days_ago(n: float) -> datetime:
    return NOW - timedelta(days=n)


# ---------------------------------------------------------------------- the state rule
def test_clean_state_clears_an_old_form_and_old_recent_lines():
    policy = retention.Policy()
    state = {"form": {"name": "registration", "step": "phone", "values": {"nik": BUDI},
                      "at": days_ago(8).isoformat()},
             "recent": [["user", "halo", days_ago(3).isoformat()],
                        ["bot", "Halo!", (NOW - timedelta(hours=1)).isoformat()]],
             "misses": 1}
    new, form, context = retention.clean_state(state, days_ago(8), NOW, policy)
    assert form and context
    assert new == {"form_cleared": {"form": "registration", "days": 7}, "misses": 1,
                   "recent": [["bot", "Halo!", (NOW - timedelta(hours=1)).isoformat()]]}


def test_clean_state_keeps_a_recent_form_and_honours_the_setting():
    state = {"form": {"name": "eligibility", "step": "nik", "values": {},
                      "at": days_ago(3).isoformat()}}
    assert retention.clean_state(state, days_ago(3), NOW, retention.Policy())[1:] == (
        False, False)
    assert retention.clean_state(state, days_ago(3), NOW,
                                 retention.Policy(form_days=2))[1] is True


def test_a_form_without_its_time_uses_the_conversation_time():
    state = {"form": {"name": "eligibility", "step": "nik", "values": {}}}
    assert retention.clean_state(state, days_ago(10), NOW, retention.Policy())[1] is True
    assert retention.clean_state(state, days_ago(1), NOW, retention.Policy())[1] is False


# ---------------------------------------------------------------------- the whole table
@pytest.fixture
def data(engine):
    """Rows on both sides of every limit."""
    with make_sessionmaker(engine).begin() as session:
        users = [User(channel="telegram", external_id=str(n)) for n in range(3)]
        session.add_all(users)
        session.flush()
        old_form = {"form": {"name": "registration", "step": "phone",
                             "values": {"nik": BUDI, "name": "Budi Santoso"},
                             "at": days_ago(8).isoformat()}}
        new_form = {"form": {"name": "eligibility", "step": "nik", "values": {},
                             "at": days_ago(2).isoformat()}}
        session.add_all([Conversation(user_id=users[0].id, state=old_form,
                                      updated_at=days_ago(8)),
                         Conversation(user_id=users[1].id, state=new_form,
                                      updated_at=days_ago(2))])
        ticket = HandoffTicket(user_id=users[2].id, status="closed", created_at=days_ago(100))
        session.add(ticket)
        session.flush()
        session.add_all([HandoffMessage(ticket_id=ticket.id, sender="user", text="lama",
                                        created_at=days_ago(95)),
                         HandoffMessage(ticket_id=ticket.id, sender="user", text="baru",
                                        created_at=days_ago(10))])
        session.add_all([NluMiss(text="lama", reason="fallback", created_at=days_ago(91)),
                         NluMiss(text="baru", reason="fallback", created_at=days_ago(5)),
                         NluMiss(text="label", reason="fallback", status="labelled",
                                 label="greet", created_at=days_ago(200))])
        for text, sent in (("Kabar untuk Budi, 31 hari", 31), ("Kabar 10 hari", 10)):
            message = OutboxMessage(kind="status", text=text, created_by="test",
                                    created_at=days_ago(sent + 1))
            session.add(message)
            session.flush()
            session.add(OutboxItem(message_id=message.id, user_id=users[2].id, state="sent",
                                   due_at=days_ago(sent), sent_at=days_ago(sent)))
        pending = OutboxMessage(kind="broadcast", text="Belum terkirim", created_by="test",
                                created_at=days_ago(40))
        session.add(pending)
        session.flush()
        session.add(OutboxItem(message_id=pending.id, user_id=users[2].id, state="pending",
                               due_at=days_ago(40)))
        session.add_all([NikAttempt(nik_hash="a" * 32, user_id=users[2].id, at=days_ago(3)),
                         NikAttempt(nik_hash="a" * 32, user_id=users[2].id, at=days_ago(1))])
        session.add_all([AuditLog(actor="x", action="old", outcome="ok",
                                  at=NOW.replace(year=2021) - timedelta(days=1)),
                         AuditLog(actor="x", action="new", outcome="ok",
                                  at=NOW.replace(year=2022))])
    return engine


EXPECTED = {"forms_cleared": 1, "contexts_cleared": 0, "handoff_messages": 1,
            "nlu_misses": 1, "outbox_texts": 1, "audit_rows": 1, "nik_attempts": 1,
            "audit_released": 0, "skipped": 0}


def snapshot(engine):
    with make_sessionmaker(engine)() as session:
        return {
            "states": [c.state for c in session.scalars(
                select(Conversation).order_by(Conversation.user_id))],
            "handoff": sorted(m.text for m in session.scalars(select(HandoffMessage))),
            "nlu": sorted(m.text for m in session.scalars(select(NluMiss))),
            "outbox": sorted(m.text for m in session.scalars(select(OutboxMessage))),
            "items": len(session.scalars(select(OutboxItem)).all()),
            "audit": sorted(a.action for a in session.scalars(select(AuditLog))),
        }


def test_a_dry_run_counts_and_changes_nothing(data):
    before = snapshot(data)
    report = retention.run(make_sessionmaker(data), NOW, dry_run=True)
    assert dict(report.items()) == EXPECTED
    assert snapshot(data) == before


def test_a_run_applies_every_limit(data):
    report = retention.run(make_sessionmaker(data), NOW)
    assert dict(report.items()) == EXPECTED
    after = snapshot(data)
    assert after["states"][0] == {"form_cleared": {"form": "registration", "days": 7}}
    assert after["states"][1]["form"]["name"] == "eligibility"
    assert after["handoff"] == ["baru"]
    assert after["nlu"] == ["baru", "label"]  # labelled: masked training data, kept
    assert after["outbox"] == sorted([retention.PURGED_TEXT, "Kabar 10 hari",
                                      "Belum terkirim"])
    assert after["items"] == 3  # the delivery records stay
    assert after["audit"] == ["new"]
    with make_sessionmaker(data)() as session:  # the ticket rows stay
        assert len(session.scalars(select(HandoffTicket)).all()) == 1
    # A second run finds nothing more.
    again = retention.run(make_sessionmaker(data), NOW)
    assert not any(count for _, count in again.items())


def test_a_conversation_changed_meanwhile_is_not_overwritten(data, monkeypatch):
    real = retention._states

    def stale(session, after):  # read before the user's latest turn
        return [(uid, state, at - timedelta(seconds=1) if at else at)
                for uid, state, at in real(session, after)]

    monkeypatch.setattr(retention, "_states", stale)
    forms, _, _ = retention.clear_stale_forms(make_sessionmaker(data), NOW, retention.Policy())
    assert forms == 0
    assert snapshot(data)["states"][0]["form"]["name"] == "registration"


def test_the_command_reports_each_count(data, db_url):
    """(The command runs at today's date: the counts below hold for any date after the
    fixture's NOW, so only their presence and the dry run's promise are checked.)"""
    runner = CliRunner()
    env = {"DATABASE_URL": db_url}
    before = snapshot(data)
    dry = runner.invoke(main, ["retention", "run", "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    assert "Dry run" in dry.output and snapshot(data) == before
    done = runner.invoke(main, ["retention", "run"], env=env)
    assert done.exit_code == 0, done.output
    for label in LABELS.values():
        assert f"{label}: " in done.output
    counts = dict(line.rsplit(": ", 1) for line in done.output.splitlines())
    for label in ("unfinished forms cleared", "handoff messages deleted",
                  "outbox texts deleted", "audit rows deleted"):
        assert int(counts[label]) >= 1
    again = runner.invoke(main, ["retention", "run", "--dry-run"], env=env)
    assert all(line.endswith(": 0") for line in again.output.splitlines()
               if not line.startswith("Dry run"))
    help_text = runner.invoke(main, ["retention", "run", "--help"]).output
    assert "--dry-run" in help_text and "PROKUS_FORM_RETENTION_DAYS" in help_text


def test_the_form_retention_setting(tmp_path):
    from bot.cli_privacy import policy_of
    from bot.settings import Settings, SettingsError

    no_file = tmp_path / "no.env"
    assert policy_of(Settings.from_env({}, env_file=no_file)).form_days == 7
    settings = Settings.from_env({"PROKUS_FORM_RETENTION_DAYS": "3"}, env_file=no_file)
    assert policy_of(settings).form_days == 3
    with pytest.raises(SettingsError, match="PROKUS_FORM_RETENTION_DAYS"):
        Settings.from_env({"PROKUS_FORM_RETENTION_DAYS": "0"}, env_file=no_file)


# ---------------------------------------------------------------------- the user is told
def test_the_user_is_told_once_and_the_conversation_goes_on(bot, texts, sqlite_engine, clock):
    Chat(bot).send("/daftar").send("ya").send(BUDI).send("Budi Santoso")
    clock.now += timedelta(days=8)
    report = retention.run(make_sessionmaker(sqlite_engine), clock.now)
    assert report.forms_cleared == 1
    with make_sessionmaker(sqlite_engine)() as session:
        state = session.scalars(select(Conversation.state)).one()
    assert "form" not in state and BUDI not in str(state) and "Budi" not in str(state)
    chat = Chat(bot).send("halo")
    assert chat.replies[0].text == texts("privacy_form_cleared", form="pendaftaran", days=7)
    assert len(chat.replies) > 1  # then the greeting, as usual
    assert texts("privacy_form_cleared", form="pendaftaran", days=7) not in Chat(
        bot).send("halo").text


# ---------------------------------------------------------------------- the daily job
def test_the_bot_runs_retention_daily(monkeypatch):
    import asyncio

    from bot import background

    runs = []
    monkeypatch.setattr(background, "apply_retention",
                        lambda assistant, settings: runs.append(1) or {"forms_cleared": 0})

    async def go():
        stop = asyncio.Event()
        task = asyncio.create_task(background.data_retention(None, None, stop, every=0.01))
        await asyncio.sleep(0.05)
        stop.set()
        await task

    asyncio.run(go())
    assert len(runs) >= 2


# ---------------------------------------------------------------------- the placeholder
def test_the_purged_text_shows_in_the_mentor_report_and_console(data):
    retention.run(make_sessionmaker(data), NOW)
    with make_sessionmaker(data)() as session:
        purged = session.scalars(select(OutboxMessage).where(
            OutboxMessage.text_purged_at.is_not(None))).one()
        assert purged.text == retention.PURGED_TEXT


def test_the_console_shows_a_purged_broadcast(sqlite_engine, clock):
    from tests.web.conftest import Console

    with make_sessionmaker(sqlite_engine).begin() as session:
        user = User(channel="telegram", external_id="9")
        message = OutboxMessage(kind="broadcast", text="Info untuk Budi", created_by="sup",
                                reference="registrants:diterima", created_at=days_ago(45))
        session.add_all([user, message])
        session.flush()
        session.add(OutboxItem(message_id=message.id, user_id=user.id, state="sent",
                               due_at=days_ago(45), sent_at=days_ago(44)))
        message_id = message.id
    assert retention.run(make_sessionmaker(sqlite_engine), NOW).outbox_texts == 1
    console = Console(sqlite_engine, clock).signed_in("sup", "supervisor")
    for path in (f"/broadcasts/{message_id}", f"/broadcasts/{message_id}/progress",
                 "/broadcasts", "/"):
        page = console.client.get(path)
        assert page.status_code == 200, (path, page.text[:300])
        assert "Info untuk Budi" not in page.text
    assert retention.PURGED_TEXT in console.client.get(f"/broadcasts/{message_id}").text
