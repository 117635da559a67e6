"""Shared by the conversation tests: a small fake registry, a settable clock, a fake NLU
that knows a few side questions, and a `Chat` that talks to the core directly."""

from __future__ import annotations

from datetime import date, datetime

from actions.context import WIB
from actions.dialogue import Dialogue
from actions.types import Turn
from bot.app import Assistant
from db.engine import make_sessionmaker
from db.models import Kpm, utcnow
from nlu.client import Entity, Parse
from tests.conftest import FakeNLU

TODAY = datetime(2026, 11, 28, 10, 0, tzinfo=WIB)

REGISTRY = [
    # nik, name, born, sex, status
    ("3201051203900001", "Budi Santoso", date(1990, 3, 12), "L", "graduasi"),
    ("3201055508920002", "Siti Aminah", date(1992, 8, 15), "P", "graduasi"),
    ("3374024101950003", "Dewi Lestari", date(1995, 1, 1), "P", "aktif"),
    ("3201052811860004", "Agus Wibowo", date(1986, 11, 28), "L", "graduasi"),
    ("3201050505900005", "Rina Marlina", date(1991, 5, 5), "P", "graduasi"),
    ("3201056902000006", "Putri Kabisat", date(2000, 2, 29), "P", "graduasi"),
]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def make_nlu() -> FakeNLU:
    fake = FakeNLU()
    fake.rules["syarat"] = Parse(
        "faq", 0.95,
        response_selector={"faq": {"response": {"intent_response_key": "faq/requirements"}}})
    fake.rules["gorengan"] = Parse("inform", 0.9, entities=(Entity("business_sector", "kuliner"),))
    return fake


def load_registry(engine) -> None:
    with make_sessionmaker(engine).begin() as session:
        for nik, name, born, sex, status in REGISTRY:
            session.add(Kpm(nik=nik, nama=name, tanggal_lahir=born, jenis_kelamin=sex,
                            kode_wilayah="3201052001", status_pkh=status, updated_at=utcnow()))


def make_bot(engine, nlu, texts, clock) -> Assistant:
    return Assistant(Dialogue(nlu, texts, clock=clock), make_sessionmaker(engine))


class Chat:
    def __init__(self, bot: Assistant, user: str = "50") -> None:
        self.bot, self.user, self.replies = bot, user, []

    def send(self, text=None, payload=None, contact=None):
        self.replies = self.bot.handle(Turn("telegram", self.user, text=text, payload=payload,
                                            contact=contact))
        return self

    def press(self, label):
        payload = next(b.payload for r in self.replies for b in r.buttons if b.label == label)
        return self.send(payload=payload)

    @property
    def text(self) -> str:
        return "\n".join(r.text for r in self.replies)

    def labels(self):
        return [b.label for r in self.replies for b in r.buttons]
