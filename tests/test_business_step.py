"""The business-field step of the eligibility check and the registration (issue 12, item 2):
everyday words from a lexicon, never a FAQ for an answer, the buttons again with every
refusal, and "Belum yakin — biar petugas yang menilai" for businesses outside the fields."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from actions.eligibility import LEXICON_PATH, lexicon
from db.engine import make_sessionmaker
from db.models import Registration
from domain import business, eligibility
from nlu.client import Parse
from tests.chat_helpers import Chat
from tests.test_registration import reach

BUDI = ("3201051203900001", "Budi Santoso")
UNSURE = "Belum yakin — biar petugas yang menilai"
LABEL = {
    "kuliner": "Kuliner", "jasa": "Jasa", "kerajinan_tangan": "Kerajinan tangan",
    "industri_kreatif": "Industri kreatif", "industri_rumah_tangga": "Industri rumah tangga",
    "budi_daya_pertanian": "Budi daya pertanian", "agrowisata": "Agrowisata",
}


def faq(key: str, confidence: float = 0.96) -> Parse:
    """What the real model did with these answers: a confident FAQ."""
    return Parse("faq", confidence,
                 response_selector={"faq": {"response": {"intent_response_key": key}}})


def at_business_step(bot, nik: str = BUDI[0], name: str = BUDI[1]) -> Chat:
    return Chat(bot).send("/cek").send("ya").send(nik).send(name)


# Written the way KPM answer "what business do you run?" (not taken from nlu/data).
EVERYDAY = [
    ("sy jualan bakso di depan rumah", "kuliner"),
    ("jualan mendoan anget", "kuliner"),
    ("martabak manis sama telor", "kuliner"),
    ("buka pecel lele tiap malam", "kuliner"),
    ("terima pesanan catering", "kuliner"),
    ("nasi uduk", "kuliner"),
    ("jamu gendong keliling kampung", "kuliner"),
    ("warkop kecil2an", "kuliner"),
    ("usaha seblak sm cilok", "kuliner"),
    ("angkringan", "kuliner"),
    ("berjualan es teh jumbo", "kuliner"),
    ("jualan baksoo", "kuliner"),
    ("matrabak", "kuliner"),
    ("salon di rumah", "jasa"),
    ("ngojek", "jasa"),
    ("tukang cukur rambut", "jasa"),
    ("laundry kiloan", "jasa"),
    ("permak jeans", "jasa"),
    ("servis hp", "jasa"),
    ("bengkle motor", "jasa"),
    ("fotokopi dan print", "jasa"),
    ("les privat anak SD", "jasa"),
    ("menjahit baju tetangga", "jasa"),
    ("anyaman bambu", "kerajinan_tangan"),
    ("bikin tas rajut", "kerajinan_tangan"),
    ("batik tulis", "kerajinan_tangan"),
    ("mebel kayu jati", "kerajinan_tangan"),
    ("gerabah", "kerajinan_tangan"),
    ("sablon kaos", "industri_kreatif"),
    ("jasa desain grafis", "industri_kreatif"),
    ("fotografer nikahan", "industri_kreatif"),
    ("konten kreator tiktok", "industri_kreatif"),
    ("nelayan", "budi_daya_pertanian"),
    ("garap sawah", "budi_daya_pertanian"),
    ("ternak kambing", "budi_daya_pertanian"),
    ("piara bebek", "budi_daya_pertanian"),
    ("tanam cabe rawit", "budi_daya_pertanian"),
    ("kolam lele di belakang rumah", "budi_daya_pertanian"),
    ("budidaya jamur tiram", "budi_daya_pertanian"),
    ("peternakan ayam kampung", "budi_daya_pertanian"),
    ("kebun petik jeruk", "agrowisata"),
    ("homestay di desa wisata", "agrowisata"),
    ("kolam pancing", "agrowisata"),
    ("bikin tempe", "industri_rumah_tangga"),
    ("produksi kripik singkong", "industri_rumah_tangga"),
    ("sambel botolan", "industri_rumah_tangga"),
    ("jamu kemasan", "industri_rumah_tangga"),
    ("sabun cair", "industri_rumah_tangga"),
    ("kerupuk", "industri_rumah_tangga"),
]


assert len(EVERYDAY) >= 40


@pytest.mark.parametrize("typed,field", EVERYDAY, ids=[t for t, _ in EVERYDAY])
def test_everyday_answers_give_the_field(bot, typed, field):
    chat = at_business_step(bot).send(typed)
    assert f"✅ Punya usaha di bidang {LABEL[field]}" in chat.text


def test_jualan_x_is_an_answer_not_the_fields_faq(bot, nlu, texts):
    nlu.rules["jualan"] = faq("faq/business_sectors")  # how the model read it
    chat = at_business_step(bot).send("jualan bakso")
    assert texts("faq/business_sectors") not in chat.text
    assert "✅ Punya usaha di bidang Kuliner" in chat.text


def test_nasi_uduk_is_not_the_graduation_faq(bot, nlu, texts):
    nlu.rules["nasi uduk"] = faq("faq/pkh_graduation", 0.98)
    chat = at_business_step(bot).send("sy jualan nasi uduk tiap pagi")
    assert texts("faq/pkh_graduation") not in chat.text
    assert "✅ Punya usaha di bidang Kuliner" in chat.text


def test_an_unknown_business_is_refused_with_the_buttons_never_a_faq(bot, nlu, texts):
    nlu.rules["barang antik"] = faq("faq/business_sectors")
    chat = at_business_step(bot).send("jualan barang antik")
    assert texts("faq/business_sectors") not in chat.text
    assert chat.text == texts("sector_unclear")
    assert [LABEL[s] for s in eligibility.SECTORS] == chat.labels()[:7]
    assert UNSURE in chat.labels() and texts("sector/belum_ada") in chat.labels()
    chat.send("pokoknya jualan barang antik")  # the second refusal explains, buttons again
    assert chat.text == texts("sector_unclear_again")
    assert UNSURE in chat.labels() and len(chat.labels()) == 9
    chat.send("lagi lagi barang antik")  # and so on: never the "go on or stop" dead end
    assert chat.text == texts("sector_unclear_again") and len(chat.labels()) == 9
    chat.press("Kerajinan tangan")
    assert "✅ Punya usaha di bidang Kerajinan tangan" in chat.text


def test_a_real_question_is_still_answered_on_the_side(bot, nlu, texts):
    nlu.rules["bidang usaha apa"] = faq("faq/business_sectors")
    chat = at_business_step(bot).send("bidang usaha apa saja yang boleh?")
    assert chat.replies[0].text == texts("faq/business_sectors")
    assert chat.replies[-1].text == texts("eligibility_ask_business")
    assert len(chat.labels()) == 8
    chat.send("buka warteg")  # and the step then takes the answer
    assert "✅ Punya usaha di bidang Kuliner" in chat.text


def test_a_question_nobody_understands_is_refused_with_the_buttons(bot, texts):
    chat = at_business_step(bot).send("yg mana ya?")
    assert chat.text == texts("sector_unclear") and UNSURE in chat.labels()


def test_no_business_yet_in_words(bot):
    chat = at_business_step(bot).send("blm punya usaha")
    assert "❌ Belum punya usaha" in chat.text


@pytest.mark.parametrize("typed", ["toko kelontong", "jual pulsa", "konter hp",
                                   "sy reseller baju"])
def test_a_business_outside_the_fields_is_told_honestly(bot, texts, typed):
    chat = at_business_step(bot).send(typed)
    assert chat.text == texts("sector_other")
    assert "tujuh bidang" in chat.text and "petugas" in chat.text
    assert UNSURE in chat.labels() and "Kuliner" in chat.labels()


def test_unsure_in_the_check_is_to_be_assessed_not_a_cross(bot, texts):
    chat = at_business_step(bot).send("toko kelontong").press(UNSURE)
    assert "⏳ Bidang usaha akan dinilai petugas" in chat.text
    assert "❌" not in chat.text and "✅ Sudah graduasi dari PKH" in chat.text
    assert texts("eligibility_pass_review") in chat.text
    assert texts("eligibility_pass") not in chat.text
    assert texts("label/register_prokus") in chat.labels()


def test_unsure_typed_in_the_check(bot):
    chat = at_business_step(bot).send("belum yakin")
    assert "⏳ Bidang usaha akan dinilai petugas" in chat.text


def test_unsure_does_not_hide_a_failing_criterion(bot, texts):
    chat = at_business_step(bot, "3374024101950003", "Dewi Lestari").send("jual pulsa")
    chat.press(UNSURE)
    assert "❌ Belum graduasi dari PKH" in chat.text and "⏳" in chat.text
    assert texts("eligibility_fail") in chat.text


def test_unsure_in_the_registration_is_submitted_for_a_petugas(bot, texts, sqlite_engine):
    chat = reach(bot, "business").send("jual pulsa sama token listrik")
    assert chat.text == texts("sector_other") and UNSURE in chat.labels()
    chat.press(UNSURE)
    assert texts("sector_review_note") in chat.text
    assert chat.replies[-1].text == texts("registration_ask_description")
    chat.send("Jualan pulsa dan token listrik di rumah").send("2 tahun")
    assert "Bidang usaha: Perlu dinilai petugas" in chat.text
    chat.press("Kirim")
    assert "PRK-2026-000001" in chat.text
    with make_sessionmaker(sqlite_engine)() as session:
        registration = session.scalars(select(Registration)).one()
    assert registration.bidang_usaha == eligibility.REVIEW


def test_registration_takes_everyday_words_and_refuses_with_the_buttons(bot, nlu, texts,
                                                                         sqlite_engine):
    nlu.rules["jualan"] = faq("faq/business_sectors")
    chat = reach(bot, "business").send("jualan sesuatu lah")
    assert chat.text == texts("sector_unclear") and UNSURE in chat.labels()
    chat.send("usaha sy ternak bebek")
    assert chat.text == texts("registration_ask_description")
    chat.send("Ternak bebek petelur di belakang rumah").send("3 tahun")
    assert "Bidang usaha: Budi daya pertanian" in chat.text


# ------------------------------------------------------------------ the lexicon itself
def test_the_lexicon_is_broad_and_only_uses_known_categories():
    words = lexicon()
    assert len(words) >= 1000
    fields = set(eligibility.SECTORS)
    assert fields <= words.categories()
    assert words.categories() <= fields | {"lainnya", "perlu_dinilai", eligibility.NO_BUSINESS,
                                           business.IGNORE}
    assert LEXICON_PATH.name == "business_lexicon.yml"


def test_a_phrase_under_two_fields_is_refused():
    with pytest.raises(ValueError, match="(?i)bakso"):
        business.Lexicon({"kuliner": ["bakso"], "jasa": ["Bakso"]})


@pytest.mark.parametrize("typed,category", [
    ("mie ayam", "kuliner"),  # longest phrase first: not "ayam" (farming)
    ("ternak ayam", "budi_daya_pertanian"),
    ("jualan nasi ayam", "kuliner"),
    ("keliling jualan bakso", "kuliner"),  # a field wins over "keliling" at equal length
    ("kue-kue basah", "kuliner"),
    ("keripiknya pedas", "industri_rumah_tangga"),
    ("beternak", "budi_daya_pertanian"),
    ("menganyam", "kerajinan_tangan"),
    ("catring", "kuliner"),
    ("kerajian tangan", "kerajinan_tangan"),
    ("saya gak tahu", None),  # not tofu
    ("tidak tahu bidangnya", None),
    ("batal", None),  # a known word is not a typo of "bawal"
    ("saya orang desa", None),
    ("main game", None),
    ("kabupaten bogor", None),
    ("pendaftaran sy yg kemarin gmn", None),
    # A farm that takes visitors is agrowisata, even when the crop's phrase is longer.
    ("kebun jambu kristal buat wisata petik", "agrowisata"),
    ("sawah sy dibuka buat wisata sawah", "agrowisata"),
    ("kebun jambu kristal", "budi_daya_pertanian"),
    ("wisata petik jeruk", "agrowisata"),
])
def test_matching(typed, category):
    found = lexicon().match(typed)
    assert (found.category if found else None) == category
