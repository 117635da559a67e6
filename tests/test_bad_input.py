"""A bad-input corpus (issue 11, "Also"): every input below is sent through the core at every
step of every form and outside forms, and through the console. No reply may be the
internal-error text, and nothing may be stored that is not a valid value.

Speed: one migrated SQLite database for the module. Each step is reached once with a valid
script and its conversation state kept; before each input the state is put back (and the
rows an input may have made are removed), so no input needs a fresh database.
"""

from __future__ import annotations

import io
import json
import re
import unicodedata
from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select

from actions import schedule as schedule_actions
from actions.mentor_tools import MAX_PAGES, MAX_TEXT, TEXT_MAX
from actions.types import Contact, Reply, Turn
from bot.app import Assistant
from bot.console import run
from db.engine import make_engine, make_sessionmaker
from db.migrate import upgrade
from db.models import AuditLog, Conversation, Mentor, MentoringSession, Registration, User, utcnow
from domain import eligibility, regions
from domain import registration as rules
from tests.chat_helpers import REGISTRY, TODAY, Clock, load_registry, make_bot, make_nlu

KPM, MENTOR = "60001", "60002"
RINA = REGISTRY[4]  # eligible, not registered (the first two are the mentor's mentees)
REGISTRY_NAMES = {name for _, name, *_ in REGISTRY}
NIK_RE = re.compile(r"^[0-9]{16}$")
PHONE_RE = re.compile(r"^\+628[0-9]{8,11}$")
PLACE_RE = re.compile(r"^[A-Za-z][A-Za-z .'\-/()]*$")

# ------------------------------------------------------------------ the corpus
DIGITS = [
    "²", "³", "¹²³", "⁰¹²³⁴⁵⁶⁷⁸⁹", "①", "①②③", "⑴", "⒈", "½", "Ⅻ", "ⅻ", "𝟙𝟚𝟛", "٣",
    "١٢", "۱۲", "१२", "০১", "๑๒", "０", "１２", "3201051203900001".translate(
        str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")),
    "3201051203900001".translate(str.maketrans("0123456789", "０１２３４５６７８９")),
    "320105120390000²", "①201051203900001", "3201 0512 0390 000①", "0812²3456789",
    "081234567890".translate(str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")),
    "08123456789①", "⁰⁸¹²³⁴⁵⁶⁷⁸⁹⁰", "١٢-٠٣-١٩٩٠", "¹²-03-1990", "١٠.٠٠", "⁹.⁰⁰",
    "jam ⁹", "٢ tahun", "² tahun", "5-12-²⁰²⁶", "1️⃣", "#️⃣", "٣ bulan", "१० बजे",
]
NUMBERS = [
    "NaN", "nan", "nan bulan", "inf", "-inf", "+inf", "Infinity", "infinity tahun",
    "1e308", "1e309 tahun", "-0", "+5", "-5 bulan", "0x1F", "0b101", "0o17", "1_000",
    "1,000,000", "1.5.5", "9" * 309, "9" * 309 + " tahun", "9" * 400 + " tahun 3 bulan",
    "1" * 4301, "9" * 4096, "9" * 5000, "99999999999999999999999",
    "-99999999999999999999", "2147483648", "9223372036854775808", "18446744073709551616",
    "0", "00", "0000000000000000", "9999999999999999", "3201050000000000",
    "99 tahun 99 bulan", "9999 tahun", "12/13/2026", "31-02-2026", "00-00-0000",
    "29-02-2027", "32 Desember", "99.99", "24.00", "23.60", "jam 25", "jam -1",
    "jam 12 malam wib", "jam 9 WITA", "09.00 wit", "jam 15 pagi", "1/1/1", "01-01-0001",
    "9999-12-31", "1e3", "١e٣",
]
CONTROL = [
    "", " ", "\x00", "a\x00b", "\x00" * 100, "\x07", "\x1b[31mmerah\x1b[0m", "\x08\x08\x08",
    "\r", "\r\n", "\n\n\n", "\t", "\x7f", "\x85", "\ufeffhalo", "halo\ufeff", "\ud800",
    "a\udfffb", "\x0b\x0c", "\u2028\u2029", "\x1c\x1d\x1e", "\x9b", "\U000e0001",
    "\ue000", "\U0010ffff", "\ufffd", "\uffff",
]
INVISIBLE = [
    "\u202e", "\u202eolah", "Budi\u202eotnaS", "\u2066x\u2069", "\u061c", "\u200b",
    "\u200b\u200c\u200d", "Budi\u200bSantoso", "3201\u200b051203900001",
    "0812\u200d34567890", "\u2060", "\u180e", "\u00ad", "\u034f", "\u3000", "\u00a0",
    "\u2800", "ㅤ",
]
SYMBOLS = [
    "😀", "🙏🙏🙏", "👍🏽", "👨‍👩‍👧‍👦", "🇮🇩", "Budi 😀 Santoso", "Budi Santoso 🙏",
    "😀 ya", "a\u0301\u0301\u0301\u0301", "Z̷̢͓a̴l̸g̵o̶ ̸t̷e̴x̵t̶", "\u0300", "e\u0301",
    "\u0301" * 200, "ﷺ", "𒐫", "ꧠ", "Ѐ", "ß", "ﬁ", "İ", "Ǆ", "™", "°C", "±5",
]
INJECTION = [
    "' OR 1=1 --", "'; DROP TABLE registrations; --", "Robert'); DROP TABLE kpm;--",
    "1; SELECT * FROM kpm", '" OR ""="', "%' OR '%'='", "admin'--", "1' AND SLEEP(5)--",
    "<script>alert(1)</script>", "<b>tebal</b>", "<img src=x onerror=alert(1)>",
    "&lt;&gt;&amp;", "</pre><pre>", "<!--", "*tebal*", "_miring_", "`kode`",
    "```\nkode\n```", "[tautan](http://evil.example)", "||spoiler||", "~coret~", "\\",
    "\\\\", "# judul", "> kutipan", "{0}", "%s", "{name}", "{}", "%d %n %x", "{{", "}}",
    "{0.__class__}", "${jndi:ldap://x}", "{{7*7}}", "%(name)s", "{text}", "{count}",
    '{"a": 1}', "[]", "null", "true", '{"nik": "3201051203900001"}', "[1,2,3]",
    '{"form": {"step": "summary"}}', "=HYPERLINK(\"http://x\")", "@SUM(1+1)", "+62=1",
    "../../etc/passwd", "C:\\Windows", "file:///etc/passwd", "http://x.example/?a=%00",
]
LONG = [
    "a" * 4096, "a" * 4097, "kata " * 1000, "😀" * 2049, "\n" * 5000, "x" * 100_000,
    "Budi Santoso " * 50, "ab" * 2000 + "\x00", "é" * 4096, "١" * 4096,
]
FORGED = [
    "/form:pick:99999999999999999999999", "/form:pick:-1", "/form:pick:0", "/form:pick:²",
    "/form:pick:١", "/form:pick:1e3", "/form:pick:" + "9" * 5000, "/form:edit:nik",
    "/form:edit:name", "/form:edit:../x", "/form:sector:../../x", "/form:sector:",
    "/form:sector:kuliner\x00", "/form:", "/form:page:999999", "/form:page:-1",
    "/form:page:" + "9" * 5000, "/form:field:../x", "/form:field:status", "/form:dob_ok",
    "/form:submit", "/form:yes", "/form:no", "/form:save", "/form:continue", "/form:edit",
    "/form:dob_other", "/mentor_mentees_page_99999", "/mentor_mentees_page_0",
    "/mentor_sessions_page_-1", "/start@OtherBot", "/%s", "/{0}", "/daftar " + "x" * 100,
    "/", "//", "/faq/../../x", "/form:restart\x00", "/" + "a" * 70,
]
CORPUS: list[str] = list(dict.fromkeys(
    DIGITS + NUMBERS + CONTROL + INVISIBLE + SYMBOLS + INJECTION + LONG + FORGED))
CONTACTS = ["0812²3456789", "+62" + "8" * 5000, "٠٨١٢٣٤٥٦٧٨٩٠", "\x00", "", "{0}",
            "+6281234567890\u202e", "99999999999999999999999"]


def test_the_corpus_is_big_enough():
    assert len(CORPUS) >= 200


# ------------------------------------------------------------------ one database
@pytest.fixture(scope="module")
def world(tmp_path_factory, texts) -> Iterator[dict[str, Any]]:
    """One migrated database with the registry, a mentor in WITA with two mentees and a
    coming session; the bot with a fake NLU and a fixed clock."""
    url = f"sqlite:///{tmp_path_factory.mktemp('bad-input') / 'bad.db'}"
    upgrade(url)
    engine = make_engine(url)
    load_registry(engine)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        from db import mentoring
        from db.repo import get_or_create_user

        mentor = mentoring.add_mentor(session, MENTOR, "Andi Pendamping", "+6281122223333",
                                      "73.71")
        for n, (nik, name, born, _, _) in enumerate(REGISTRY[:2], start=1):
            user = get_or_create_user(session, "telegram", f"6100{n}")
            session.flush()
            session.add(Registration(
                number=f"PRK-2025-{n:06d}", user_id=user.id, nik=nik, nama=name,
                tanggal_lahir=born, no_hp="+6281234567890", kabupaten="Kota Makassar",
                kecamatan="Panakkukang", desa="Pandang", bidang_usaha="kuliner",
                deskripsi_usaha="Warung makan", lama_usaha_bulan=12, status="diterima",
                created_at=utcnow(), updated_at=utcnow()))
            session.flush()
            mentoring.assign(session, mentor.id, f"PRK-2025-{n:06d}")
        start = datetime.combine(TODAY.date() + timedelta(days=3), time(9, 0),
                                 regions.zone("73.71"))
        item, _ = schedule_actions.create(session, texts, mentor, start, "Balai Desa Pandang",
                                          "Mencatat keuangan", actor="test", now=TODAY)
        session.flush()
        original = {"starts_at": item.starts_at, "tempat": item.tempat, "topik": item.topik,
                    "status": item.status, "id": item.id}
    bot = make_bot(engine, make_nlu(), texts, Clock(TODAY))
    yield {"bot": bot, "sessions": sessions, "session": original}
    engine.dispose()


# ------------------------------------------------------------------ driving the core
def send(bot: Assistant, user: str, text: str | None = None, payload: str | None = None,
         contact: str | None = None) -> list[Reply]:
    return bot.handle(Turn("telegram", user, text=text, payload=payload,
                           contact=Contact(contact, user_id=user) if contact is not None
                           else None))


def user_id(session, external: str) -> int:
    return session.scalar(select(User.id).where(User.external_id == external))


def state_of(world, external: str) -> dict[str, Any]:
    with world["sessions"]() as session:
        uid = user_id(session, external)
        conversation = session.get(Conversation, uid) if uid is not None else None
        return dict(conversation.state) if conversation else {}


def reset(world, external: str, state: dict[str, Any]) -> None:
    """Put the user's conversation state back and remove what an input may have made."""
    original = world["session"]
    with world["sessions"].begin() as session:
        uid = user_id(session, external)
        if uid is not None:
            conversation = session.get(Conversation, uid)
            if conversation is not None:
                conversation.state = json.loads(json.dumps(state))
            session.execute(delete(AuditLog).where(AuditLog.actor == f"user:{uid}"))
            session.execute(delete(Registration).where(Registration.user_id == uid))
        item = session.get(MentoringSession, original["id"])
        item.starts_at, item.tempat = original["starts_at"], original["tempat"]
        item.topik, item.status = original["topik"], original["status"]


def reach(world, external: str, script: list[tuple[str, str]]) -> dict[str, Any]:
    """Start from nothing, answer `script` ((kind, value) pairs), return the state there."""
    reset(world, external, {})
    bot = world["bot"]
    for kind, value in script:
        send(bot, external, **{kind: value})
    return state_of(world, external)


# Scripts reaching each step: (user, form, step, script).
CONSENT = [("text", "/cek")]
REG = [("text", "/daftar"), ("payload", "/form:yes"), ("text", RINA[0]),
       ("text", RINA[1]), ("payload", "/form:dob_ok"),
       ("contact", "+6281234567890"), ("text", "Kabupaten Bogor"), ("text", "Cibinong"),
       ("text", "Pakansari"), ("payload", "/form:sector:kuliner"),
       ("text", "Jualan gorengan di depan sekolah"), ("text", "2 tahun"),
       ("payload", "/form:edit")]
REG_STEPS = ("consent", "nik", "name", "birth_date", "phone", "kabupaten", "kecamatan",
             "desa", "business", "description", "months", "summary", "edit")
ELIG = [("text", "/cek"), ("payload", "/form:yes"), ("text", RINA[0]), ("text", RINA[1])]
STATUS = [("text", "/status"), ("payload", "/form:yes"), ("text", RINA[0])]
NEW = [("text", "/jadwal_baru"), ("text", "05-12-2026"), ("text", "09.00"),
       ("text", "Balai Desa"), ("text", "Pemasaran")]
EDIT = [("text", "/ubah_jadwal"), ("payload", "/form:pick:1")]
CANCEL = [("text", "/batal_jadwal"), ("payload", "/form:pick:1")]
KIRIM = [("text", "/kirim"), ("text", "Besok bawa buku kas ya")]

TARGETS: list[tuple[str, str, str, list[tuple[str, str]]]] = [
    (KPM, "none", "-", []),
    *[(KPM, "eligibility", step, ELIG[:i + 1]) for i, step in
      enumerate(("consent", "nik", "name", "business"))],
    *[(KPM, "registration", step, REG[:i + 1]) for i, step in enumerate(REG_STEPS)],
    (KPM, "registration", "birth_date typed", REG[:4] + [("payload", "/form:dob_other")]),
    (KPM, "registration", "months (editing)", REG + [("payload", "/form:edit:months")]),
    *[(KPM, "status", step, STATUS[:i + 1]) for i, step in
      enumerate(("consent", "nik", "name"))],
    *[(MENTOR, "session_new", step, NEW[:i + 1]) for i, step in
      enumerate(("date", "time", "place", "topic", "confirm"))],
    (MENTOR, "session_edit", "pick", EDIT[:1]),
    (MENTOR, "session_edit", "field", EDIT),
    *[(MENTOR, "session_edit", f"value {field}", EDIT + [("payload", f"/form:field:{field}")])
      for field in ("date", "time", "place", "topic")],
    (MENTOR, "session_edit", "confirm", EDIT + [("payload", "/form:field:place"),
                                                ("text", "Aula Kecamatan")]),
    (MENTOR, "session_cancel", "pick", CANCEL[:1]),
    (MENTOR, "session_cancel", "confirm", CANCEL),
    (MENTOR, "mentor_broadcast", "text", KIRIM[:1]),
    (MENTOR, "mentor_broadcast", "confirm", KIRIM),
]


# ------------------------------------------------------------------ what may be stored
def _clean_string(value: str) -> bool:
    """No control, format (except the emoji joiner), surrogate or private-use characters;
    line breaks only in a message text."""
    return not any(unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn") and ch != "\n"
                   or unicodedata.category(ch) == "Cf" and ch != "\u200d" for ch in value)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _iso(value: str, reader: Callable[[str], Any]) -> bool:
    try:
        reader(value)
    except (TypeError, ValueError):
        return False
    return True


CHECKS: dict[str, Callable[[Any], bool]] = {
    "nik": lambda v: isinstance(v, str) and bool(NIK_RE.match(v)),
    "name": lambda v: v in REGISTRY_NAMES,
    "birth_date": lambda v: _iso(v, date.fromisoformat),
    "born": lambda v: _iso(v, date.fromisoformat),
    "status": lambda v: v in ("graduasi", "aktif"),
    "phone": lambda v: isinstance(v, str) and bool(PHONE_RE.match(v)),
    "kabupaten": lambda v: bool(PLACE_RE.match(v)) and len(v) <= rules.PLACE_MAX,
    "kecamatan": lambda v: bool(PLACE_RE.match(v)) and len(v) <= rules.PLACE_MAX,
    "desa": lambda v: bool(PLACE_RE.match(v)) and len(v) <= rules.PLACE_MAX,
    "business": lambda v: v in eligibility.SECTORS or v == eligibility.REVIEW,
    "description": lambda v: rules.DESCRIPTION_MIN <= len(v) <= rules.DESCRIPTION_MAX,
    "months": lambda v: type(v) is int and 0 <= v <= rules.MONTHS_MAX,
    "session": lambda v: type(v) is int and 0 < v < 2**31,
    "date": lambda v: _iso(v, date.fromisoformat),
    "time": lambda v: bool(re.match(r"^[0-9]{2}:[0-9]{2}$", v)) and _iso(v, time.fromisoformat),
    "zone": lambda v: v is None or v in regions.ZONES,
    "new_zone": lambda v: v is None or v in regions.ZONES,
    "field": lambda v: v in ("date", "time", "place", "topic"),
    "place": lambda v: 3 <= len(v) <= TEXT_MAX["place"] and "\n" not in v,
    "topic": lambda v: 3 <= len(v) <= TEXT_MAX["topic"] and "\n" not in v,
    "text": lambda v: 5 <= len(v) <= MAX_TEXT,
    "new": lambda v: isinstance(v, str) and len(v) <= max(TEXT_MAX.values()) and "\n" not in v,
}


def problems(world, external: str, replies: list[Reply], internal: str) -> list[str]:
    """What is wrong after one turn: an internal error, an empty reply, a stored value that
    is not valid."""
    found = []
    if any(r.text == internal for r in replies):
        found.append("internal error reply")
    if not replies or any(not r.text.strip() for r in replies):
        found.append("no reply text")
    state = state_of(world, external)
    if not all(_clean_string(s) for s in _strings(state)):
        found.append(f"dirty string in state {state!r:.200}")
    form = state.get("form") or {}
    for key, value in (form.get("values") or {}).items():
        check = CHECKS.get(key)
        if check is None or not check(value):
            found.append(f"stored {key}={value!r:.80}")
    page = form.get("page")
    if page is not None and not (type(page) is int and 1 <= page <= MAX_PAGES):
        found.append(f"stored page={page!r:.40}")
    with world["sessions"]() as session:
        for reg in session.scalars(select(Registration).where(
                Registration.user_id == user_id(session, external))):
            if not (NIK_RE.match(reg.nik) and PHONE_RE.match(reg.no_hp)
                    and reg.nama in REGISTRY_NAMES and 0 <= reg.lama_usaha_bulan <= 600):
                found.append(f"registration stored with bad values: {reg.number}")
        item = session.get(MentoringSession, world["session"]["id"])
        if not (_clean_string(item.tempat) and _clean_string(item.topik)
                and len(item.tempat) <= TEXT_MAX["place"]):
            found.append("mentoring session stored with bad values")
    return found


@pytest.mark.parametrize("external,form,step,script", TARGETS,
                         ids=[f"{form}:{step}" for _, form, step, _ in TARGETS])
def test_every_bad_input_at_every_step(world, texts, external, form, step, script):
    bot, internal = world["bot"], texts("internal_error")
    snapshot = reach(world, external, script)
    if form != "none":
        assert (snapshot.get("form") or {}).get("name") == form, snapshot
        assert step.split()[0] == snapshot["form"]["step"], snapshot
    failures = []
    turns = [("text", value) for value in CORPUS]
    turns += [("payload", value) for value in CORPUS if value.startswith("/")]
    if step in ("phone", "-"):
        turns += [("contact", value) for value in CONTACTS]
    for kind, value in turns:
        reset(world, external, snapshot)
        replies = send(bot, external, **{kind: value})
        failures += [f"{kind} {value!r:.60}: {p}"
                     for p in problems(world, external, replies, internal)]
    assert failures == []


def test_the_console_survives_the_corpus(world, texts):
    lines = [value.replace("\n", " ").replace("\r", " ").replace("\x85", " ")
             .replace("\u2028", " ").replace("\u2029", " ") for value in CORPUS]
    stdin = io.StringIO("/daftar\n1\n" + "\n".join(lines) + "\n/cek\n²\n" + "9" * 4400 + "\n")
    out = io.StringIO()
    run(world["bot"], "60009", stdin=stdin, out=out)
    text = out.getvalue()
    assert texts("internal_error") not in text
    assert text.count("\n> ") + text.startswith("> ") >= len(lines)
    with world["sessions"]() as session:
        assert session.scalar(select(Mentor.id).where(Mentor.id == 1)) == 1
