"""Issue 16 item 4: /data_saya shows what is kept about the account (masked), /hapus_data
erases it after a confirmation: a registration still being processed is withdrawn
("ditarik", the operator sees it), the registration and the audit log stay without the
link to the Telegram account. Both commands are audited, masked."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from db import retention
from db.engine import make_sessionmaker
from db.models import (
    AuditLog,
    Conversation,
    HandoffTicket,
    OutboxItem,
    Registration,
    User,
)
from domain import registration as rules
from tests.chat_helpers import Chat

BUDI = "3201051203900001"
PHONE = "081234567891"


def submit_budi(bot, user="50"):
    chat = Chat(bot, user).send("/daftar").send("ya").send(BUDI).send("Budi Santoso")
    for answer in ("ya", PHONE, "Bogor", "Cibinong", "Pakansari"):
        chat.send(answer)
    chat.send("Kuliner").send("jualan gorengan di depan sekolah").send("2 tahun")
    return chat.send("kirim")


def registrations(engine):
    with make_sessionmaker(engine)() as session:
        return [(r.number, r.status, r.user_id) for r in session.scalars(
            select(Registration).order_by(Registration.id))]


def audit_rows(engine):
    with make_sessionmaker(engine)() as session:
        return list(session.scalars(select(AuditLog).order_by(AuditLog.id)))


def state_of(engine, user_id):
    with make_sessionmaker(engine)() as session:
        conversation = session.get(Conversation, user_id)
        return dict(conversation.state) if conversation else {}


def user_of(engine, external_id="50"):
    with make_sessionmaker(engine)() as session:
        return session.scalars(select(User).where(User.external_id == external_id)).one()


# ---------------------------------------------------------------------- /data_saya
def test_data_saya_without_anything(bot, texts):
    chat = Chat(bot).send("/data_saya")
    assert texts("privacy_my_data_title") in chat.text
    assert texts("privacy_my_data_no_registration") in chat.text
    assert texts("privacy_my_data_no_consent") in chat.text
    assert texts("privacy_my_data_no_form") in chat.text


def test_data_saya_shows_registration_consent_and_form_masked(bot, texts, sqlite_engine):
    assert "PRK-" in submit_budi(bot).text
    chat = Chat(bot).send("/cek").send("ya").send(BUDI)  # a running form with a NIK
    chat.send("/data_saya")
    shown = chat.text
    assert "PRK-2026-000001" in shown and texts("status/diajukan") in shown
    assert "3201********0001" in shown and BUDI not in shown
    assert "Bu** Sa****" in shown and "Budi Santoso" not in shown
    assert "+62812*****891" in shown and "81234567891" not in shown
    assert "Persetujuan penggunaan data: diberikan 28 November 2026" in shown
    assert "(untuk cek kelayakan)" in shown  # the latest consent: the check just now
    assert texts("privacy_my_data_form", form="cek kelayakan",
                 detail=" " + texts("privacy_my_data_form_nik", nik="3201********0001")) in shown
    assert "cek kelayakan (NIK 3201********0001)" in shown
    # The form waits: its question comes again after the side answer.
    assert chat.replies[-1].text.startswith(texts("eligibility_ask_name").split("{")[0][:20])
    viewed = [r for r in audit_rows(sqlite_engine) if r.action == "data_viewed"]
    assert len(viewed) == 1 and viewed[0].actor == f"user:{user_of(sqlite_engine).id}"


def test_consent_is_stored_with_its_time(bot, sqlite_engine, clock):
    Chat(bot).send("/cek").send("ya")
    user = user_of(sqlite_engine)
    assert user.consent_for == "eligibility"
    assert user.consent_at == clock.now
    Chat(bot, "51").send("/cek").send("tidak")  # no consent: nothing recorded
    assert user_of(sqlite_engine, "51").consent_at is None


# ---------------------------------------------------------------------- /hapus_data
def test_hapus_data_asks_first_and_batal_keeps_everything(bot, texts, sqlite_engine):
    submit_budi(bot)
    chat = Chat(bot).send("/hapus_data")
    assert texts("privacy_delete_ask_withdraw", numbers="PRK-2026-000001") in chat.text
    assert chat.labels() == [texts("privacy_delete_yes"), texts("privacy_delete_no")]
    chat.press(texts("privacy_delete_no"))
    assert chat.text == texts("privacy_delete_cancelled")
    assert registrations(sqlite_engine) == [("PRK-2026-000001", "diajukan",
                                             user_of(sqlite_engine).id)]


def test_hapus_data_withdraws_unlinks_and_deletes(bot, texts, sqlite_engine, clock):
    submit_budi(bot)
    user_id = user_of(sqlite_engine).id
    with make_sessionmaker(sqlite_engine).begin() as session:  # a closed handoff, a notice
        session.add(HandoffTicket(user_id=user_id, status="closed"))
        from db.outbox import enqueue
        enqueue(session, "status", "Kabar untuk Budi Santoso", [user_id], created_by="test")
    chat = Chat(bot).send("/hapus_data").press(texts("privacy_delete_yes"))
    assert texts("privacy_delete_done") in chat.text
    assert texts("privacy_delete_done_withdrawn", numbers="PRK-2026-000001") in chat.text
    # The registration is kept (law), withdrawn and without the account.
    assert registrations(sqlite_engine) == [("PRK-2026-000001", rules.WITHDRAWN, None)]
    with make_sessionmaker(sqlite_engine)() as session:
        assert session.scalars(select(HandoffTicket)).all() == []
        assert session.scalars(select(OutboxItem).where(OutboxItem.user_id == user_id)
                               ).all() == []
        user = session.get(User, user_id)
        assert user.consent_at is None and user.consent_for is None
    # Nothing personal is left in the conversation state.
    state = state_of(sqlite_engine, user_id)
    assert "form" not in state and "recent" not in state
    assert BUDI not in json.dumps(state)
    # The audit trail stays; the withdrawal is there for the operator.
    rows = audit_rows(sqlite_engine)
    withdrawn = [r for r in rows if r.action == "registration_status"
                 and r.outcome == rules.WITHDRAWN]
    assert len(withdrawn) == 1 and withdrawn[0].subject == "PRK-2026-000001"
    erased = [r for r in rows if r.action == "data_erased"]
    assert len(erased) == 1 and erased[0].actor.startswith("terhapus:")
    # The last day's rows keep the account (NIK lookup limits) until retention, a day later,
    # gives them the erasure's pseudonym.
    assert {r.actor for r in rows if r.action == "nik_lookup"} == {f"user:{user_id}"}
    retention.run(make_sessionmaker(sqlite_engine), clock.now + timedelta(days=1, hours=1))
    rows = audit_rows(sqlite_engine)
    assert not [r for r in rows if r.actor == f"user:{user_id}"]
    assert {r.actor for r in rows if r.action in ("nik_lookup", "registration_submit")} == {
        erased[0].actor}
    with make_sessionmaker(sqlite_engine)() as session:
        user = session.get(User, user_id)
        assert user.erased_at is None and user.erase_pseudonym is None
    # /data_saya afterwards: nothing about the registration.
    chat.send("/data_saya")
    assert texts("privacy_my_data_no_registration") in chat.text


def test_after_hapus_data_the_nik_may_register_again(bot, texts, sqlite_engine):
    submit_budi(bot)
    Chat(bot).send("/hapus_data").press(texts("privacy_delete_yes"))
    assert "PRK-2026-000002" in submit_budi(bot).text


def test_an_accepted_registration_is_kept_not_withdrawn(bot, texts, sqlite_engine):
    submit_budi(bot)
    with make_sessionmaker(sqlite_engine).begin() as session:
        session.scalars(select(Registration)).one().status = rules.ACCEPTED
    chat = Chat(bot).send("/hapus_data")
    assert texts("privacy_delete_ask_keep") in chat.text
    assert "DITARIK" not in chat.text
    chat.press(texts("privacy_delete_yes"))
    assert registrations(sqlite_engine) == [("PRK-2026-000001", rules.ACCEPTED, None)]


def test_the_confirmation_expires(bot, texts, clock):
    chat = Chat(bot).send("/hapus_data")
    clock.now += timedelta(minutes=20)
    chat.press(texts("privacy_delete_yes"))
    assert chat.text == texts("privacy_delete_expired")


def test_hapus_data_during_a_form_keeps_its_buttons_and_batal_resumes(bot, texts,
                                                                       sqlite_engine):
    chat = Chat(bot).send("/cek").send("ya").send("/hapus_data")
    assert chat.labels() == [texts("privacy_delete_yes"), texts("privacy_delete_no")]
    chat.press(texts("privacy_delete_no"))
    assert texts("form_back") in chat.text
    assert state_of(sqlite_engine, user_of(sqlite_engine).id)["form"]["step"] == "nik"
    chat.send("/hapus_data").press(texts("privacy_delete_yes"))
    assert "form" not in state_of(sqlite_engine, user_of(sqlite_engine).id)


def test_hapus_data_waits_for_an_open_handoff(bot, texts, sqlite_engine):
    Chat(bot).send("halo")
    with make_sessionmaker(sqlite_engine).begin() as session:
        session.add(HandoffTicket(user_id=user_of(sqlite_engine).id, status="waiting"))
    chat = Chat(bot).send("/hapus_data")
    assert texts("privacy_delete_handoff_open") in chat.text


# ---------------------------------------------------------------------- the status rules
def test_operators_cannot_set_ditarik():
    for status in rules.STATUSES:
        assert rules.WITHDRAWN not in rules.TRANSITIONS[status]
        with pytest.raises(rules.StatusChangeError):
            rules.check_transition(status, rules.WITHDRAWN, None)
    assert rules.TRANSITIONS[rules.WITHDRAWN] == frozenset()
    assert [s for s in rules.ALL_STATUSES if rules.can_withdraw(s)] == [rules.SUBMITTED,
                                                                         rules.VERIFIED]


# ---------------------------------------------------------------------- masked audit
def test_no_clear_personal_data_in_the_audit_log_after_both_commands(bot, texts,
                                                                     sqlite_engine):
    submit_budi(bot)
    Chat(bot).send("/data_saya").send("/hapus_data").press(texts("privacy_delete_yes"))
    assert user_of(sqlite_engine).erase_pseudonym.startswith("terhapus:")
    dump = json.dumps([[r.actor, r.subject, r.detail] for r in audit_rows(sqlite_engine)])
    for clear in (BUDI, "Budi Santoso", "81234567891", "Santoso"):
        assert clear not in dump


def test_audit_values_are_masked_whatever_the_caller_passes(engine):
    from db import repo

    with make_sessionmaker(engine).begin() as session:
        repo.audit(session, "test", "probe", "ok", subject=f"nik {BUDI}",
                   detail={"nik": BUDI, "hp": "+62 812-3456-7890", "n": int(BUDI),
                           "list": [f"hp {PHONE}"], "count": 3})
    row = audit_rows(engine)[-1]
    assert row.subject == "nik 3201********0001"
    assert row.detail == {"nik": "3201********0001", "hp": "+62812*****890",
                          "n": "3201********0001", "list": ["hp +62812*****891"], "count": 3}


def test_both_commands_work_in_the_console_channel(bot, texts):
    import io

    from bot.console import run

    out = io.StringIO()
    run(bot, "77", stdin=io.StringIO("/data_saya\n/hapus_data\n1\n"), out=out)
    shown = out.getvalue()
    assert texts("privacy_my_data_no_registration") in shown
    assert f"[1] {texts('privacy_delete_yes')}" in shown
    assert texts("privacy_delete_done").strip() in shown


def test_the_console_shows_a_withdrawn_registration(bot, texts, sqlite_engine, clock):
    from tests.web.conftest import Console

    submit_budi(bot)
    Chat(bot).send("/hapus_data").press(texts("privacy_delete_yes"))
    console = Console(sqlite_engine, clock).signed_in("sup", "supervisor")
    for path in ("/registrations/PRK-2026-000001", "/registrations", "/", "/audit"):
        page = console.client.get(path)
        assert page.status_code == 200, (path, page.text[:300])
    assert "reg-ditarik" in console.client.get("/registrations/PRK-2026-000001").text
    assert "ditarik" in console.client.get("/audit").text


@pytest.fixture
def any_bot(engine, texts, clock):
    """The core on SQLite and on PostgreSQL."""
    from tests.chat_helpers import load_registry, make_bot, make_nlu

    load_registry(engine)
    return make_bot(engine, make_nlu(), texts, clock)


def test_hapus_data_on_both_back_ends(any_bot, engine, texts, clock):
    submit_budi(any_bot)
    user_id = user_of(engine).id
    Chat(any_bot).send("/data_saya").send("/hapus_data").press(texts("privacy_delete_yes"))
    assert registrations(engine) == [("PRK-2026-000001", rules.WITHDRAWN, None)]
    report = retention.run(make_sessionmaker(engine), clock.now + timedelta(days=2))
    assert report.audit_released >= 3
    assert not [r for r in audit_rows(engine) if r.actor == f"user:{user_id}"]
    assert "form" not in state_of(engine, user_id)
    assert "PRK-2026-000002" in submit_budi(any_bot).text


def test_an_erasure_does_not_reset_the_nik_lookup_limit(bot, texts, sqlite_engine):
    """The hourly limit counts the account's lookups: /hapus_data must not wipe them."""
    from actions.identity import LOOKUP_ACTION

    Chat(bot).send("/cek").send("ya").send(BUDI).send("Budi Santoso")
    user_id = user_of(sqlite_engine).id
    Chat(bot).send("/hapus_data").press(texts("privacy_delete_yes"))
    looked_up = [r for r in audit_rows(sqlite_engine) if r.action == LOOKUP_ACTION]
    assert looked_up and {r.actor for r in looked_up} == {f"user:{user_id}"}
