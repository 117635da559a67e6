"""Issue 11 items 8-10 and 16 at the domain level: digits of other scripts, look-alike
digits, numbers that overflow, names with emoji, and mentor session times."""

from __future__ import annotations

from datetime import date, time

import pytest

from domain import dates, names, nik, numbers, phone, regions, schedule
from domain import registration as rules

TODAY = date(2026, 11, 28)
ARABIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


def test_decimal_digits_of_any_script_fold_to_ascii_and_look_alikes_do_not():
    assert numbers.fold_digits("١٢ ۳۴ १२ ０９ 12") == "12 34 12 09 12"
    assert numbers.fold_digits("²①½Ⅻ") == "²①½Ⅻ"
    assert numbers.read_int("٤٢", max_digits=3) == 42
    for bad in ("²", "①", "4" * 5000, "-1", "1_0", " ", "", "1.0", "٣" * 4):
        assert numbers.read_int(bad, max_digits=3) is None
    assert numbers.read_int("7", max_digits=1, low=1, high=5) is None


def test_nik_in_arabic_indic_or_full_width_digits_is_stored_in_ascii():
    assert nik.parse("3201051203900001".translate(ARABIC)).value == "3201051203900001"
    assert nik.parse("3201051203900001".translate(FULL_WIDTH)).value == "3201051203900001"


@pytest.mark.parametrize("text", ["320105120390000²", "①201051203900001", "3201051203900001²",
                                  "3201051203900001" + "9" * 5000])
def test_nik_with_look_alike_digits_or_huge_is_refused_with_a_hint(text):
    with pytest.raises(nik.NikError) as error:
        nik.parse(text)
    assert error.value.key in ("nik_not_digits", "nik_length")


@pytest.mark.parametrize("raw,expected", [
    ("0812²3456789", None), ("08123456789①", None), ("0812³456789", None),
    ("081234567890".translate(ARABIC), "+6281234567890"),
    ("081234567890".translate(FULL_WIDTH), "+6281234567890"),
    ("+62" + "8" * 4000, None),
])
def test_phone_digits(raw, expected):
    assert phone.normalise(raw) == expected


def test_region_codes_with_look_alike_digits():
    assert not regions.valid_region("7²") and regions.zone_name("7²") == "WIB"
    # a stored region code must be ASCII: the operator CLI refuses other digits
    assert not regions.valid_region("٧٣") and regions.zone_name("٧٣٧١") == "WIB"


@pytest.mark.parametrize("name", ["Budi 😀 Santoso", "Budi Santoso 🙏", "Budi\u200dSantoso",
                                  "Budi <b>Santoso</b>", "Budi {name}", "Budi_Santoso",
                                  "Bu²di Santoso", "Budi Santoso\u202e", "Budi @Santoso",
                                  "Budi; DROP TABLE kpm", "a"])
def test_names_with_symbols_digits_or_emoji_are_not_plausible(name):
    assert not names.plausible(name)


@pytest.mark.parametrize("name", ["Siti Aminah", "José Ma'ruf", "Moh. Yusuf",
                                  "Siti Nur-Aini", "Ni Ketut Sarì", "Nur’aini", "RUDI"])
def test_real_names_are_plausible(name):
    assert names.plausible(name)


def test_accents_compare_like_plain_letters():
    assert names.same_person("José Ma'ruf", "Jose Ma'ruf")


@pytest.mark.parametrize("text", ["NaN", "nan bulan", "inf", "infinity tahun", "Infinity",
                                  "9" * 309, "9" * 309 + " tahun", "9" * 5000 + " bulan",
                                  "1e308 tahun", "9" * 400 + " tahun 3 bulan", "² tahun",
                                  "①", "-5 bulan", "0x10"])
def test_months_never_raise_and_never_accept_nonsense(text):
    duration = rules.parse_months(text)
    assert duration.months is None and duration.key in ("months_unreadable", "months_too_many")


def test_months_in_other_scripts():
    assert rules.parse_months("٢ tahun").months == 24
    assert rules.parse_months("１,５ tahun").months == 18


def test_birth_date_in_arabic_indic_digits():
    assert dates.parse_birth_date("12-03-1990".translate(ARABIC), TODAY) == date(1990, 3, 12)
    with pytest.raises(dates.DateError):
        dates.parse_birth_date("¹²-03-1990", TODAY)


@pytest.mark.parametrize("text,expected", [
    ("jam 12 malam", time(0, 0)), ("12 malam", time(0, 0)), ("jam 12 siang", time(12, 0)),
    ("jam 7 malam", time(19, 0)), ("jam 1 malam", time(1, 0)), ("jam 10 siang", time(10, 0)),
    ("jam 2 siang", time(14, 0)), ("jam 3 sore", time(15, 0)), ("09.00", time(9, 0)),
    ("19.30 malam", time(19, 30)), ("١٠.٠٠", time(10, 0)),
])
def test_session_times(text, expected):
    assert schedule.read_session_time(text).at == expected


@pytest.mark.parametrize("text,zone", [("09.00 WIB", "WIB"), ("jam 9 wita", "WITA"),
                                       ("14.00 WIT", "WIT"), ("jam 2 siang WIB", "WIB"),
                                       ("09.00", None)])
def test_session_time_zone_suffix_is_read(text, zone):
    assert schedule.read_session_time(text).zone == zone


@pytest.mark.parametrize("text", ["jam 15 pagi", "²", "⁹.⁰⁰", "9" * 5000, "25.00", "9.60"])
def test_bad_session_times(text):
    with pytest.raises(dates.DateError):
        schedule.read_session_time(text)


def test_session_dates_with_other_digits():
    assert schedule.parse_session_date("5-12-2026".translate(ARABIC), TODAY) == date(2026, 12, 5)
    for bad in ("⁵-12-2026", "5" * 5000):
        with pytest.raises(dates.DateError):
            schedule.parse_session_date(bad, TODAY)
