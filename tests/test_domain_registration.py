"""Pure rules used by the registration form: dates, durations, places, statuses."""

from datetime import date

import pytest

from domain import dates
from domain import registration as rules

TODAY = date(2026, 11, 28)


@pytest.mark.parametrize("text,expected", [
    ("12-03-1990", date(1990, 3, 12)),
    ("12/3/1990", date(1990, 3, 12)),
    ("12.03.90", date(1990, 3, 12)),
    ("12 Maret 1990", date(1990, 3, 12)),
    ("12 mar 1990", date(1990, 3, 12)),
    ("12-mar-90", date(1990, 3, 12)),
    ("5 agustus 2001", date(2001, 8, 5)),
    ("5 agt 2001", date(2001, 8, 5)),
    ("17 nopember 1985", date(1985, 11, 17)),
    ("12031990", date(1990, 3, 12)),
    ("29 Februari 2000", date(2000, 2, 29)),
    ("01-01-05", date(2005, 1, 1)),
])
def test_dates_as_people_write_them(text, expected):
    assert dates.parse_birth_date(text, TODAY) == expected


@pytest.mark.parametrize("text,key", [
    ("kemarin", "date_unreadable"),
    ("12 maretan 1990", "date_unreadable"),
    ("1990", "date_unreadable"),
    ("31-02-1990", "date_impossible"),
    ("29 Februari 2001", "date_impossible"),
    ("12-13-1990", "date_impossible"),
    ("28-11-2026", "date_future"),
    ("01-01-1900", "date_too_old"),
])
def test_bad_dates_get_a_reason(text, key):
    with pytest.raises(dates.DateError) as error:
        dates.parse_birth_date(text, TODAY)
    assert error.value.key == key


def test_indonesian_dates():
    assert dates.indonesian(date(1990, 3, 12)) == "12 Maret 1990"
    assert dates.indonesian(date(2026, 11, 28), weekday=True) == "Sabtu, 28 November 2026"


@pytest.mark.parametrize("text,months", [
    ("8 bulan", 8), ("8 bln", 8), ("2 tahun", 24), ("2 thn", 24), ("1,5 tahun", 18),
    ("1.5 th", 18), ("setahun", 12), ("sebulan", 1), ("dua tahun", 24), ("tiga bulan", 3),
    ("sudah 3 tahun", 36), ("sekitar 6 bulan", 6), ("3 minggu", 0), ("0", 0),
    ("Udah 2 tahunan", 24), ("1 tahun 6 bulan", 18), ("2 thn dan 3 bln", 27),
])
def test_months_running(text, months):
    assert rules.parse_months(text).months == months


@pytest.mark.parametrize("text,key", [
    ("lama", "months_unreadable"), ("", "months_unreadable"), ("bulan", "months_unreadable"),
    ("100 tahun", "months_too_many"),
])
def test_unreadable_durations(text, key):
    assert rules.parse_months(text) == rules.Duration(None, key)


@pytest.mark.parametrize("text,expected", [
    ("kabupaten bogor", "Kabupaten Bogor"), ("KOTA  BANDUNG", "KOTA BANDUNG"),
    ("kab. tangerang", "Kab. Tangerang"), ("Pangkal Pinang", "Pangkal Pinang"),
    ("tanjung priok", "Tanjung Priok"), ("Ma'rang", "Ma'rang"),
    ("12", None), ("ab", None), ("jalan 5", None), ("@@@", None), ("x" * 61, None),
])
def test_place_names(text, expected):
    assert rules.clean_place(text) == expected


def test_descriptions():
    assert rules.clean_description("  jualan   gorengan di pasar ") == "jualan gorengan di pasar"
    assert rules.clean_description("ok") is None
    assert rules.clean_description("1234567890123") is None
    assert rules.clean_description("a" * 301) is None


def test_status_transitions():
    rules.check_transition("diajukan", "diverifikasi", None)
    rules.check_transition("diverifikasi", "ditolak", "data tidak cocok")
    for current, new, reason in [("diajukan", "diterima", None), ("diterima", "ditolak", "x"),
                                 ("ditolak", "diajukan", None), ("diajukan", "diajukan", None),
                                 ("diajukan", "ditolak", "  "), ("diajukan", "batal", None)]:
        with pytest.raises(rules.StatusChangeError):
            rules.check_transition(current, new, reason)


def test_numbers():
    assert rules.number(2026, 123) == "PRK-2026-000123"
    assert rules.NUMBER_RE.match("PRK-2026-000123")
