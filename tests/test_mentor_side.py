"""Issue 12 item 8, the mentor side: a mentor's /start and "menu" show the mentor's own
commands, session buttons are cut between words, and dates such as "besok" or "sabtu depan"
are read."""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest

from actions.mentor_tools import LABEL_MAX, short_label
from domain import dates, schedule
from tests import test_mentoring as mentoring
from tests.chat_helpers import Chat
from tests.test_mentoring import MENTOR_TG, NOW, local_day, new_session

# The mentoring tests' fixtures: a mentor in Makassar (WITA) with two mentees.
bot, clock, prokus, sessions, team = (mentoring.bot, mentoring.clock, mentoring.prokus,
                                      mentoring.sessions, mentoring.team)

THURSDAY = date(2026, 11, 26)
SATURDAY = date(2026, 11, 28)
MENTOR_BUTTONS = ("label/mentor_new_session", "label/mentor_sessions", "label/mentor_mentees",
                  "label/mentor_broadcast")


# --- the mentor's menu -------------------------------------------------------------------

@pytest.mark.parametrize("message", ["/start", "menu", "/menu"])
def test_a_mentor_sees_their_own_commands(team, texts, message):
    chat = Chat(team, MENTOR_TG).send(message)
    assert chat.labels() == [texts(key) for key in MENTOR_BUTTONS]
    assert "/ubah_jadwal" in chat.text and "/batal_jadwal" in chat.text
    assert "Andi Pendamping" in chat.text
    assert texts("label/register_prokus") not in chat.labels()


def test_the_mentor_menu_buttons_work(team, texts):
    chat = Chat(team, MENTOR_TG).send("/start")
    assert "Budi Santoso" in chat.press(texts("label/mentor_mentees")).text
    chat = Chat(team, MENTOR_TG).send("/start").press(texts("label/mentor_new_session"))
    assert chat.text == texts("session_ask_date")
    chat.send("batal")
    chat = Chat(team, MENTOR_TG).send("/start").press(texts("label/mentor_broadcast"))
    assert chat.text == texts("broadcast_ask_text")


@pytest.mark.parametrize("message", ["/start", "menu"])
def test_a_kpm_still_sees_the_kpm_menu(team, texts, message):
    chat = Chat(team, "700001").send(message)
    assert texts("label/help") in chat.labels()
    assert texts("label/mentor_new_session") not in chat.labels()
    assert "/ubah_jadwal" not in chat.text


# --- session buttons ---------------------------------------------------------------------

@pytest.mark.parametrize("topic,expected", [
    ("Mencatat keuangan usaha", "05/12 09.00 Mencatat keuangan usaha"),
    ("Mencatat keuangan usaha dan menghitung laba rugi",
     "05/12 09.00 Mencatat keuangan usaha dan…"),
    ("Pemasaran lewat WhatsApp, Facebook dan Instagram",
     "05/12 09.00 Pemasaran lewat WhatsApp…"),
    ("Kewirausahaansosialberkelanjutanuntukkeluarga", "05/12 09.00 Kewirausahaansosialberkelan…"),
    ("Izin usaha dan NIB: cara daftar di OSS", "05/12 09.00 Izin usaha dan NIB: cara…"),
])
def test_short_labels_cut_between_words(topic, expected):
    label = short_label("05/12 09.00", topic)
    assert label == expected and len(label) <= LABEL_MAX


def test_session_pick_buttons_keep_date_and_time_and_whole_words(team, texts):
    topic = "Mencatat keuangan usaha dan menghitung laba rugi bulanan"
    new_session(team, local_day(3), "09.00", topic=topic).press(texts("mentor_save"))
    for command in ("/ubah_jadwal", "/batal_jadwal"):
        label = Chat(team, MENTOR_TG).send(command).labels()[0]
        day = local_day(3)
        assert label.startswith(f"{day[:2]}/{day[3:5]} 09.00 Mencatat")
        assert label.endswith("…") and len(label) <= LABEL_MAX
        assert label[:-1].split()[-1] in topic.split()  # no word cut in half


# --- dates the mentor types --------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("hari ini", THURSDAY),
    ("besok", date(2026, 11, 27)),
    ("Besok", date(2026, 11, 27)),
    ("bsk", date(2026, 11, 27)),
    ("lusa", date(2026, 11, 28)),
    ("sabtu depan", date(2026, 11, 28)),  # the coming Saturday
    ("Sabtu", date(2026, 11, 28)),
    ("hari sabtu", date(2026, 11, 28)),
    ("sabtu minggu depan", date(2026, 12, 5)),  # the Saturday of next week
    ("sabtu pekan depan", date(2026, 12, 5)),
    ("kamis", date(2026, 12, 3)),  # a weekday name is never today: that is "hari ini"
    ("kamis ini", THURSDAY),
    ("senin", date(2026, 11, 30)),
    ("jum'at", date(2026, 11, 27)),
    ("hari minggu", date(2026, 11, 29)),
    ("hari minggu depan", date(2026, 11, 29)),
    ("tgl 5", date(2026, 12, 5)),
    ("tanggal 30", date(2026, 11, 30)),
    ("tgl 26", THURSDAY),
    ("tgl 31", date(2026, 12, 31)),  # November has no 31st
    ("tgl. 5 des", date(2026, 12, 5)),
    ("5 des", date(2026, 12, 5)),
    ("5/12", date(2026, 12, 5)),
    ("hari sabtu, 5 des 2026", date(2026, 12, 5)),
    ("Sabtu, 5 Desember 2026", date(2026, 12, 5)),
    ("5-12-2026", date(2026, 12, 5)),
])
def test_session_dates_as_mentors_write_them(text, expected):
    assert schedule.parse_session_date(text, THURSDAY) == expected


@pytest.mark.parametrize("text,expected", [
    ("sabtu depan", SATURDAY + timedelta(days=7)),  # on a Saturday: the next one
    ("sabtu ini", SATURDAY),
    ("sabtu minggu ini", SATURDAY),
    ("minggu", date(2026, 11, 29)),
    ("senin minggu depan", date(2026, 11, 30)),
    ("besok", date(2026, 11, 29)),
    ("tgl 5", date(2026, 12, 5)),
    ("tgl 28", SATURDAY),
])
def test_session_dates_on_a_saturday(text, expected):
    assert schedule.parse_session_date(text, SATURDAY) == expected


@pytest.mark.parametrize("text,key", [
    ("kemarin", "session_date_past"),
    ("senin minggu ini", "session_date_past"),
    ("minggu depan", "session_date_week"),  # next week, or next Sunday? ask
    ("pekan depan", "session_date_week"),
    ("kapan2 aja", "session_date_unclear"),
    ("5", "session_date_unclear"),
    ("tgl 32", "date_impossible"),
    ("31/2", "date_impossible"),
])
def test_session_dates_refused_with_a_hint(text, key, texts):
    with pytest.raises(dates.DateError) as error:
        schedule.parse_session_date(text, THURSDAY)
    assert error.value.key == key and key in texts


def test_the_date_step_reads_besok_and_confirms_weekday_and_full_date(team, texts):
    tomorrow = (NOW + timedelta(days=1)).astimezone(ZoneInfo("Asia/Makassar")).date()
    chat = new_session(team, "besok", "23.59")
    assert dates.indonesian(tomorrow, weekday=True) in chat.text  # "Jumat, 27 November 2026"
    chat.send("batal")
    chat = Chat(team, MENTOR_TG).send("/jadwal_baru").send("minggu depan")
    assert chat.text == texts("session_date_week")
    assert chat.send("sabtu depan").text == texts("session_ask_time")
