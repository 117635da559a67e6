"""Mentors, schedules, reminders and mentor broadcasts: the CLI, the dialogue core, and the
outbox worker against the fake Bot API."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from bot.cli import main
from bot.outbox_runner import worker_config
from bot.settings import Settings
from bot.telegram_sender import TelegramSender
from db.engine import make_sessionmaker
from db.models import AuditLog, OutboxItem, OutboxMessage, Registration, User, utcnow
from outbox.worker import Worker
from tests.chat_helpers import Chat, Clock, load_registry, make_bot, make_nlu

MENTOR_TG = "900100"
MENTEES = [("700001", "3201051203900001", "Budi Santoso"),
           ("700002", "3201055508920002", "Siti Aminah")]
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def prokus(db_url):
    runner = CliRunner()

    def run(*args: str, ok: bool = True, input: str | None = None):
        result = runner.invoke(main, list(args), input=input,
                               env={"DATABASE_URL": db_url, "PROKUS_OPERATOR": "dinsos"})
        assert (result.exit_code == 0) == ok, result.output
        return result

    return run


@pytest.fixture
def clock():
    return Clock(NOW)


@pytest.fixture
def sessions(engine):
    return make_sessionmaker(engine)


@pytest.fixture
def bot(engine, texts, clock):
    load_registry(engine)
    return make_bot(engine, make_nlu(), texts, clock)


def register(sessions, telegram_id: str, nik: str, name: str, status="diterima",
             number: int = 1) -> None:
    from db.repo import get_or_create_user

    with sessions.begin() as session:
        user = get_or_create_user(session, "telegram", telegram_id)
        session.flush()
        session.add(Registration(
            number=f"PRK-2026-{number:06d}", user_id=user.id, nik=nik, nama=name,
            tanggal_lahir=date(1990, 1, 1), no_hp="+6281234567890", kabupaten="Kota Makassar",
            kecamatan="Panakkukang", desa="Pandang", bidang_usaha="kuliner",
            deskripsi_usaha="Warung makan", lama_usaha_bulan=12, status=status,
            kode_wilayah=nik[:6], created_at=utcnow(), updated_at=utcnow()))


@pytest.fixture
def team(bot, sessions, prokus):
    """A mentor in Makassar (WITA) with two accepted mentees."""
    for n, (telegram_id, nik, name) in enumerate(MENTEES, start=1):
        register(sessions, telegram_id, nik, name, number=n)
    prokus("mentors", "add", "--telegram-id", MENTOR_TG, "--name", "Andi Pendamping",
           "--phone", "0811-2222-3333", "--region", "73.71")
    prokus("mentors", "assign", "1", "PRK-2026-000001")
    prokus("mentors", "assign", "1", "prk-2026-000002")
    return bot


def outbox(sessions, kind: str | None = None):
    with sessions() as session:
        stmt = select(OutboxMessage.kind, OutboxMessage.reference, OutboxItem.state,
                      OutboxItem.due_at, OutboxItem.expires_at, OutboxMessage.text
                      ).join(OutboxItem)
        if kind:
            stmt = stmt.where(OutboxMessage.kind == kind)
        return session.execute(stmt.order_by(OutboxItem.id)).all()


def new_session(bot, when_day: str, when_time: str, place="Balai Desa Pandang",
                topic="Mencatat keuangan usaha") -> Chat:
    chat = Chat(bot, MENTOR_TG).send("/jadwal_baru").send(when_day).send(when_time)
    return chat.send(place).send(topic)


def local_day(delta_days: int) -> str:
    day = (NOW + timedelta(days=delta_days)).astimezone(__import__("zoneinfo").ZoneInfo(
        "Asia/Makassar")).date()
    return day.strftime("%d-%m-%Y")


def test_mentor_cli_add_assign_list(team, prokus, sessions):
    listing = prokus("mentors", "list").output
    assert "Andi Pendamping" in listing and "WITA" in listing and " 2 " in listing
    assert "already mentor" in prokus("mentors", "add", "--telegram-id", MENTOR_TG, "--name",
                                      "X", "--phone", "081200000000", "--region", "73",
                                      ok=False).output
    assert "already assigned" in prokus("mentors", "assign", "1", "PRK-2026-000001",
                                        ok=False).output
    bad_phone = prokus("mentors", "add", "--telegram-id", "5", "--name", "X", "--phone",
                       "12345", "--region", "73", ok=False).output
    assert "Indonesian mobile number" in bad_phone
    register(sessions, "700009", "3201050505900005", "Rina Marlina", status="diajukan", number=9)
    assert "only accepted" in prokus("mentors", "assign", "1", "PRK-2026-000009",
                                     ok=False).output
    with sessions() as session:
        actions = session.scalars(select(AuditLog.action).order_by(AuditLog.id)).all()
        role = session.scalar(select(User.role).where(User.external_id == MENTOR_TG))
    assert actions.count("mentor_assign") == 2 and "mentor_add" in actions
    assert role == "mentor"


def test_kpm_side_before_and_after_assignment(bot, sessions, prokus, texts):
    assert texts("mentoring_not_registered")[:40] in Chat(bot, "700001").send("/jadwal").text
    register(sessions, "700001", "3201051203900001", "Budi Santoso", status="diverifikasi")
    chat = Chat(bot, "700001").send("/jadwal")
    assert "PRK-2026-000001" in chat.text and "dinas sosial" in chat.text
    prokus("mentors", "add", "--telegram-id", MENTOR_TG, "--name", "Andi Pendamping",
           "--phone", "081122223333", "--region", "7371")
    prokus("registrations", "set-status", "PRK-2026-000001", "--status", "diterima")
    prokus("mentors", "assign", "1", "PRK-2026-000001")
    assert "belum membuat jadwal" in Chat(bot, "700001").send("/jadwal").text
    contact = Chat(bot, "700001").send("/pendamping").text
    assert "Andi Pendamping" in contact and "+6281122223333" in contact


def test_new_session_tells_mentees_and_queues_two_reminders(team, sessions, texts):
    chat = new_session(team, local_day(3), "09.00")
    assert "WITA" in chat.text and "2 peserta" in chat.text
    chat.press(texts("mentor_save"))
    assert "Jadwal tersimpan" in chat.text
    rows = outbox(sessions)
    kinds = Counter((kind, ref.split(":")[-1]) for kind, ref, *_ in rows)
    assert kinds == Counter({("session", "new"): 2, ("reminder", "h-1"): 2,
                             ("reminder", "h-2j"): 2})
    reminders = [r for r in rows if r.kind == "reminder"]
    start = reminders[0].expires_at.replace(tzinfo=UTC)
    assert start.astimezone(__import__("zoneinfo").ZoneInfo("Asia/Makassar")).hour == 9
    dues = sorted({r.due_at.replace(tzinfo=UTC) for r in reminders})
    assert dues == [start - timedelta(days=1), start - timedelta(hours=2)]
    # the mentee sees it, in the mentor's time zone
    seen = Chat(team, "700001").send("/jadwal").text
    assert "pukul 09.00 WITA" in seen and "Balai Desa Pandang" in seen


def test_session_form_checks_date_time_and_batal(team, texts):
    chat = Chat(team, MENTOR_TG).send("/jadwal_baru")
    assert texts("session_date_past") in chat.send("kemarin").text  # read, and refused
    assert texts("session_date_unclear") in chat.send("kapan2 aja").text
    assert texts("session_date_past") in chat.send("01-01-2020").text  # + the example
    chat.send(local_day(0))
    assert chat.send("jam berapa ya").text == texts("session_time_unreadable")
    chat.send("batal")
    assert chat.text == texts("session_new_cancelled")


def test_changing_a_session_moves_its_reminders_and_tells_mentees(team, sessions, texts):
    new_session(team, local_day(3), "09.00").press(texts("mentor_save"))
    chat = Chat(team, MENTOR_TG).send("/ubah_jadwal")
    chat.press(chat.labels()[0]).press(texts("session_field/time")).send("jam 2 siang")
    assert "14.00 WITA" in chat.text
    chat.press(texts("mentor_save"))
    assert "Jadwal diubah" in chat.text
    rows = outbox(sessions, "reminder")
    assert Counter(r.state for r in rows) == Counter({"cancelled": 4, "pending": 4})
    live = [r for r in rows if r.state == "pending"]
    start = live[0].expires_at.replace(tzinfo=UTC)
    assert start.astimezone(__import__("zoneinfo").ZoneInfo("Asia/Makassar")).hour == 14
    changed = [r for r in outbox(sessions, "session") if "change" in r.reference]
    assert len(changed) == 2 and "09.00" in changed[0].text and "14.00" in changed[0].text


def test_cancelling_a_session_cancels_reminders_and_tells_mentees(team, sessions, texts):
    new_session(team, local_day(3), "09.00").press(texts("mentor_save"))
    chat = Chat(team, MENTOR_TG).send("/batal_jadwal")
    chat.press(chat.labels()[0]).press(texts("mentor_cancel_yes"))
    assert "Jadwal dibatalkan" in chat.text
    assert Counter(r.state for r in outbox(sessions, "reminder")) == Counter({"cancelled": 4})
    assert len([r for r in outbox(sessions, "session") if r.reference.endswith("cancel")]) == 2
    assert "belum membuat jadwal" in Chat(team, "700001").send("/jadwal").text


def test_someone_elses_session_cannot_be_picked(team, sessions, prokus, texts):
    new_session(team, local_day(3), "09.00").press(texts("mentor_save"))
    prokus("mentors", "add", "--telegram-id", "900200", "--name", "Mentor Lain", "--phone",
           "081299998888", "--region", "3201")
    other = Chat(team, "900200").send("/batal_jadwal")
    assert other.text == texts("mentor_no_sessions")
    Chat(team, "900200").send("/jadwal_baru").send(local_day(4)).send("08.00").send(
        "Aula Kecamatan").send("Pemasaran").press(texts("mentor_save"))
    other = Chat(team, "900200").send("/batal_jadwal")
    assert len(other.labels()) == 1  # only their own session is offered
    other.send("/form:pick:1")  # a forged button for the first mentor's session
    # refused by the core (never offered) or by the form (not theirs)
    assert texts("session_pick_unclear") in other.text or "tidak berlaku" in other.text
    with sessions() as session:
        from db.models import MentoringSession

        assert session.get(MentoringSession, 1).status == "terjadwal"


@pytest.mark.parametrize("command", ["/jadwal_baru", "/jadwal_saya", "/ubah_jadwal",
                                     "/batal_jadwal", "/peserta", "/kirim"])
def test_mentor_commands_are_refused_and_audited_for_others(team, sessions, texts, command):
    chat = Chat(team, "700001").send(command)
    assert chat.text == texts("mentor_only")
    with sessions() as session:
        denied = session.scalars(select(AuditLog).where(AuditLog.action == "mentor_denied")).one()
    assert denied.subject == command


def test_mentees_list_and_my_sessions(team, texts):
    people = Chat(team, MENTOR_TG).send("/peserta").text
    assert "Budi Santoso (PRK-2026-000001)" in people and "Siti Aminah" in people
    assert Chat(team, MENTOR_TG).send("/jadwal_saya").text == texts("mentor_no_sessions")
    new_session(team, local_day(2), "10.00").press(texts("mentor_save"))
    mine = Chat(team, MENTOR_TG).send("/jadwal").text  # a mentor's /jadwal is their own
    assert "1. " in mine and "10.00 WITA" in mine


def run_worker(sessions, fake, settings) -> None:
    async def go():
        sender = TelegramSender(fake.token, fake.base_url)
        config = worker_config(settings)
        config.rate, config.poll_seconds = 200.0, 0.05
        try:
            await asyncio.wait_for(Worker(sessions, sender, config).run(
                asyncio.Event(), until_idle=True), 60)
        finally:
            await sender.close()

    asyncio.run(go())


def test_kirim_sends_to_mentees_and_reports_back(team, sessions, fake, texts):
    fake.add_chats([int(MENTOR_TG), 700001, 700002])
    fake.block(700002)
    chat = Chat(team, MENTOR_TG).send("/kirim").send("Besok bawa buku kas ya")
    assert "2 peserta" in chat.text and "Besok bawa buku kas ya" in chat.text
    chat.press(texts("registration_submit"))
    assert texts("broadcast_queued", count=2) == chat.text
    run_worker(sessions, fake, Settings())
    assert fake.texts(700001) == [texts("broadcast_from_mentor", mentor="Andi Pendamping",
                                        text="Besok bawa buku kas ya")]
    assert fake.texts(int(MENTOR_TG)) == [
        "Laporan pengiriman pesan: terkirim 1, gagal 1: memblokir bot."]


def test_reminders_missed_while_down_go_out_if_the_session_has_not_begun(
        team, sessions, fake, texts, clock):
    """The mentor made two sessions 3 hours ago; the bot was down since. The one starting in
    an hour still gets its 2-hour reminder (late); the one that began 10 minutes ago does
    not."""
    fake.add_chats([700001, 700002])
    clock.now = NOW - timedelta(hours=3)
    soon = (NOW + timedelta(hours=1)).astimezone(__import__("zoneinfo").ZoneInfo(
        "Asia/Makassar"))
    begun = (NOW - timedelta(minutes=10)).astimezone(soon.tzinfo)
    for start, topic in ((soon, "Sesi nanti"), (begun, "Sesi lewat")):
        new_session(team, start.strftime("%d-%m-%Y"), start.strftime("%H.%M"),
                    topic=topic).press(texts("mentor_save"))
    run_worker(sessions, fake, Settings())
    received = fake.texts(700001)
    reminders = [t for t in received if t.startswith("⏰")]
    assert len(reminders) == 1 and "Sesi nanti" in reminders[0]
    states = Counter((r.reference.split(":")[-1], r.state) for r in outbox(sessions, "reminder"))
    assert states[("h-2j", "expired")] == 2 and states[("h-2j", "sent")] == 2


def test_broadcast_cli_preview_confirm_queue_and_status(team, prokus, sessions, fake):
    preview = prokus("broadcast", "send", "--to", "mentees:1", "--text", "Rapat hari Sabtu",
                     input="n\n", ok=False).output
    assert "mentees of mentor 1 (Andi Pendamping): 2 recipient(s)" in preview
    assert "| Rapat hari Sabtu" in preview and "Aborted" in preview
    assert outbox(sessions, "broadcast") == []
    queued = prokus("broadcast", "send", "--to", "registrants:diterima", "--text",
                    "Rapat hari Sabtu", "--yes", "--no-wait").output
    assert "broadcast 1 queued for 2 recipient(s)" in queued
    fake.add_chats([700001])
    fake.block(700002)
    run_worker(sessions, fake, Settings())
    report = prokus("broadcast", "status", "1").output
    assert "sent 1, blocked 1 (of 2)" in report
    with sessions() as session:
        assert session.scalar(select(User.is_active).where(User.external_id == "700002")) \
            is False
    # a blocked user is skipped next time, and said so in the preview
    again = prokus("broadcast", "send", "--to", "mentees:1", "--text", "Lagi", "--yes",
                   "--no-wait").output
    assert "1 recipient(s) (1 skipped" in again


@pytest.mark.parametrize("target,message", [
    ("mentees:99", "no mentor 99"),
    ("everyone", "use mentees:MENTOR_ID"),
    ("registrants:lulus", "use mentees:MENTOR_ID"),
    ("region:00", "use mentees:MENTOR_ID"),
])
def test_broadcast_targets_are_checked(team, prokus, target, message):
    assert message in prokus("broadcast", "send", "--to", target, "--text", "x", "--yes",
                             ok=False).output


def test_broadcast_by_region_uses_the_registrations_region_code(team, prokus):
    out = prokus("broadcast", "send", "--to", "region:3201", "--text", "Info wilayah",
                 "--yes", "--no-wait").output
    assert "registrants in region 3201: 2 recipient(s)" in out


def test_worker_without_token_is_a_clear_error(db_url, engine):
    result = CliRunner().invoke(main, ["worker", "--until-idle"],
                                env={"DATABASE_URL": db_url, "TELEGRAM_BOT_TOKEN": ""})
    assert result.exit_code != 0 and "TELEGRAM_BOT_TOKEN is not set" in result.output


def test_a_question_in_a_mentor_message_is_the_message(team, nlu_rules_question, texts):
    chat = Chat(team, MENTOR_TG).send("/kirim").send("Apa saja syaratnya? Bawa KTP ya")
    assert "Apa saja syaratnya? Bawa KTP ya" in chat.text and chat.labels()[0] == "Kirim"


@pytest.fixture
def nlu_rules_question():
    """make_nlu() already maps "syarat" to faq/requirements at 0.95."""
    return True


def test_reassigning_moves_the_mentees_reminders(team, prokus, sessions, texts):
    new_session(team, local_day(3), "09.00").press(texts("mentor_save"))
    prokus("mentors", "add", "--telegram-id", "900200", "--name", "Mentor Baru", "--phone",
           "081299998888", "--region", "7371")
    Chat(team, "900200").send("/jadwal_baru").send(local_day(5)).send("10.00").send(
        "Aula Kecamatan").send("Pemasaran").press(texts("mentor_save"))  # no mentees yet
    out = prokus("mentors", "assign", "2", "PRK-2026-000001").output
    assert "(was mentor 1)" in out and "2 reminder(s) added" in out
    with sessions() as session:
        budi = session.scalar(select(User.id).where(User.external_id == "700001"))
        rows = session.execute(select(OutboxMessage.reference, OutboxItem.state).join(
            OutboxItem).where(OutboxItem.user_id == budi,
                              OutboxMessage.kind == "reminder")).all()
    assert Counter(state for _, state in rows) == Counter({"cancelled": 2, "pending": 2})
    assert {ref for ref, state in rows if state == "pending"} == {"session:2:h-1",
                                                                  "session:2:h-2j"}


# ---------------------------------------------------------------- issue 11: long lists,
# forged numbers, zones and midnight in typed times, message lines


def add_mentees(sessions, count: int, start: int = 3) -> list[str]:
    """`count` more accepted registrations assigned to mentor 1; returns their names."""
    from db import mentoring

    names = []
    for n in range(start, start + count):
        name = f"Peserta Nomor {n:03d}"
        register(sessions, f"71{n:04d}", f"3201051203{n:06d}", name, number=n)
        names.append(name)
    with sessions.begin() as session:
        for n in range(start, start + count):
            mentoring.assign(session, 1, f"PRK-2026-{n:06d}")
    return names


def test_sixty_mentees_come_in_pages_under_the_telegram_limit(team, sessions, texts):
    names = add_mentees(sessions, 58) + [name for _, _, name in MENTEES]
    chat = Chat(team, MENTOR_TG).send("/peserta")
    seen = []
    for page in (1, 2, 3):
        assert len(chat.text) < 4096 and "(60 orang)" in chat.text
        assert texts("page_of", page=page, pages=3) in chat.text
        seen += [name for name in names if f"• {name} (" in chat.text]
        expected = ([texts("page_previous")] if page > 1 else []) + (
            [texts("page_next")] if page < 3 else [])
        assert chat.labels() == expected
        assert all(len(b.payload.encode()) <= 64 for r in chat.replies for b in r.buttons)
        if page < 3:
            chat.press(texts("page_next"))
    assert sorted(seen) == sorted(names)  # each mentee once
    chat.press(texts("page_previous"))
    assert texts("page_of", page=2, pages=3) in chat.text
    assert chat.send("Berikutnya ➡️").text.count("• ") == 20  # the label typed works too
    # a page beyond the last shows the last one; a forged huge one is an unknown command
    assert texts("page_of", page=3, pages=3) in chat.send(payload="/mentor_mentees_page_50").text
    assert chat.send(payload="/mentor_mentees_page_99999999999999999999").text == texts(
        "unknown_command")
    assert Chat(team, "700001").send(payload="/mentor_mentees_page_2").text == texts(
        "mentor_only")


def make_sessions(team, sessions, count: int) -> None:
    from actions import schedule
    from db.models import Mentor

    with sessions.begin() as session:
        mentor = session.get(Mentor, 1)
        for n in range(count):
            schedule.create(session, team.dialogue.texts, mentor,
                            NOW + timedelta(days=2 + n), "Balai Desa", f"Topik {n + 1:02d}",
                            actor="test", now=NOW)


def test_many_sessions_come_in_pages_in_the_list_and_the_pick_buttons(team, sessions, texts):
    make_sessions(team, sessions, 13)
    mine = Chat(team, MENTOR_TG).send("/jadwal_saya")
    assert "1. " in mine.text and "11. " not in mine.text and texts("page_next") in mine.labels()
    assert "11. " in mine.press(texts("page_next")).text and "Topik 13" in mine.text
    chat = Chat(team, MENTOR_TG).send("/batal_jadwal")
    assert len(chat.labels()) == 11 and chat.labels()[-1] == texts("page_next")
    chat.press(texts("page_next"))
    assert chat.labels()[-1] == texts("page_previous") and len(chat.labels()) == 4
    chat.press(next(label for label in chat.labels() if "Topik 13" in label))
    chat.press(texts("mentor_cancel_yes"))
    assert "Jadwal dibatalkan" in chat.text


def test_forged_session_ids_and_pages_are_bounded_in_the_form_itself(team, sessions, texts):
    """Defence in depth: even a payload the core lets through is read safely."""
    from actions.context import Context
    from actions.mentor_tools import CANCEL, page_number
    from actions.types import Turn
    from db import mentoring
    from db.repo import get_or_create_user

    make_sessions(team, sessions, 1)
    with sessions() as session:
        user = get_or_create_user(session, "telegram", MENTOR_TG)
        mentor = mentoring.mentor_for_user(session, user)
        ctx = Context(turn=Turn("telegram", MENTOR_TG, payload="x"), user=user, state={},
                      session=session, texts=texts)
        for ident in ("99999999999999999999999", "2147483648", "²", "①", "-1", "0", "1e3",
                      "9" * 5000, "", "1 OR 1=1", "../../x"):
            assert CANCEL.picked(ctx, mentor, f"/form:pick:{ident}") is None
        assert CANCEL.picked(ctx, mentor, "/form:pick:١").id == 1  # Arabic-Indic one
    assert page_number("99999999999999999999", 3) == 3 and page_number("²", 3) == 1
    assert page_number("0", 3) == 1 and page_number("2", 3) == 2


def test_a_time_in_another_zone_is_converted_and_midnight_is_midnight(team, sessions, texts):
    chat = Chat(team, MENTOR_TG).send("/jadwal_baru").send(local_day(3))
    chat.send("09.00 WIB")  # the mentor is in WITA
    assert texts("session_time_converted", typed="09.00 WIB", local="10.00 WITA") in chat.text
    assert "pukul 10.00 WITA" in chat.send("Balai Desa").send("Pemasaran").text
    chat.press(texts("mentor_save"))
    midnight = new_session(team, local_day(4), "jam 12 malam")
    assert "pukul 00.00 WITA" in midnight.text
    midnight.press(texts("mentor_save"))
    edit = Chat(team, MENTOR_TG).send("/ubah_jadwal")
    edit.press(edit.labels()[0]).press(texts("session_field/time")).send("jam 2 siang WIT")
    assert "13.00 WITA" in edit.text and "14.00 WIT" in edit.text
    edit.press(texts("mentor_save"))
    with sessions() as session:
        from db.models import MentoringSession

        hours = sorted(s.starts_at.astimezone(__import__("zoneinfo").ZoneInfo(
            "Asia/Makassar")).hour for s in session.scalars(select(MentoringSession)))
    assert hours == [0, 13]


def test_a_mentor_message_keeps_its_lines(team, sessions, texts):
    message = "Halo semua,\r\nBesok bawa buku kas.\n\n\n\nTerima kasih"
    chat = Chat(team, MENTOR_TG).send("/kirim").send(message)
    assert "Halo semua,\nBesok bawa buku kas.\n\nTerima kasih" in chat.text
    chat.press(texts("registration_submit"))
    (row,) = {r.text for r in outbox(sessions, "broadcast")}
    assert row.endswith("Halo semua,\nBesok bawa buku kas.\n\nTerima kasih")


def test_a_topic_phrased_as_a_question_is_taken_as_the_topic(team, texts):
    chat = new_session(team, local_day(3), "09.00", topic="bagaimana mencatat kas harian?")
    assert texts("form_question_unclear").strip() not in chat.text
    assert "bagaimana mencatat kas harian?" in chat.text  # shown in the confirmation
