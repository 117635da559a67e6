"""NIK, phone, names and the eligibility rules: every boundary."""

from datetime import date

import pytest

from domain import eligibility, names, phone
from domain import nik as nik_rules


@pytest.mark.parametrize("value,key,values", [
    ("320105120390000", "nik_length", {"got": 15}),
    ("32010512039000011", "nik_length", {"got": 17}),
    ("3201O51203900001", "nik_not_digits", {}),
    ("", "nik_not_digits", {}),
    ("9901051203900001", "nik_province", {"code": "99"}),
    ("2001051203900001", "nik_province", {"code": "20"}),
    ("3200051203900001", "nik_region", {}),
    ("3201001203900001", "nik_region", {}),
    ("3201053203900001", "nik_date", {}),   # day 32
    ("3201057203900001", "nik_date", {}),   # day 72 (woman 32)
    ("3201051213900001", "nik_date", {}),   # month 13
    ("3201053002900001", "nik_date", {}),   # 30 February
    ("3201052902010001", "nik_date", {}),   # 29 February 1901/2001: no leap year
    ("3201051203900000", "nik_serial", {}),
])
def test_bad_niks_get_a_precise_reason(value, key, values):
    with pytest.raises(nik_rules.NikError) as error:
        nik_rules.parse(value)
    assert error.value.key == key and error.value.values == values


def test_nik_with_spaces_and_dots_is_cleaned():
    assert nik_rules.parse("3201 0512 0390 0001").value == "3201051203900001"
    assert nik_rules.parse("32.01.05.120390.0001").value == "3201051203900001"


def test_womans_nik_has_day_plus_40():
    parsed = nik_rules.parse("3201055508920002")
    assert parsed.female and parsed.day == 15 and parsed.month == 8
    assert parsed.matches_birth_date(date(1992, 8, 15))
    assert not parsed.matches_birth_date(date(1992, 8, 16))


def test_29_february_in_a_leap_year_is_a_valid_nik_date():
    parsed = nik_rules.parse("3201052902000003")
    assert parsed.birth_dates() == [date(2000, 2, 29)]


def test_every_province_code():
    for code in nik_rules.PROVINCES:
        assert nik_rules.parse(f"{code:02d}01051203900001").province == code


def test_mask():
    assert nik_rules.mask("3201051203900001") == "3201********0001"


@pytest.mark.parametrize("born,today,age", [
    (date(1986, 11, 28), date(2026, 11, 27), 39),  # the day before the 40th birthday
    (date(1986, 11, 28), date(2026, 11, 28), 40),  # the 40th birthday itself
    (date(1988, 2, 29), date(2028, 2, 28), 39),
    (date(1988, 2, 29), date(2028, 2, 29), 40),
    (date(1988, 2, 29), date(2027, 2, 28), 38),    # common year: not yet on 28 Feb
    (date(1988, 2, 29), date(2027, 3, 1), 39),     # ...but on 1 March
])
def test_age_on_birthdays(born, today, age):
    assert eligibility.age_on(born, today) == age


def test_under_40_is_strict():
    on_birthday = eligibility.evaluate("graduasi", date(1986, 11, 28), "jasa", date(2026, 11, 28))
    day_before = eligibility.evaluate("graduasi", date(1986, 11, 28), "jasa", date(2026, 11, 27))
    assert not eligibility.eligible(on_birthday) and eligibility.eligible(day_before)


def test_every_criterion_can_fail_alone():
    today, born = date(2026, 11, 28), date(1990, 1, 1)
    assert [c.ok for c in eligibility.evaluate("aktif", born, "kuliner", today)] == [
        False, True, True]
    assert [c.ok for c in eligibility.evaluate("graduasi", born, "belum_ada", today)] == [
        True, True, False]


@pytest.mark.parametrize("raw,expected", [
    ("081234567890", "+6281234567890"), ("+6281234567890", "+6281234567890"),
    ("0812-3456-7890", "+6281234567890"), ("6281234567890", "+6281234567890"),
    ("0812345678", "+62812345678"), ("08123456", None), ("0212345678", None),
    ("08123456789012", None), ("+1 555 1234", None), ("0812abc45678", None),
])
def test_phone_numbers(raw, expected):
    assert phone.normalise(raw) == expected


def test_names():
    # One left-out part when two match: the demo's "Contoh" may be left out (issue 12).
    assert names.same_person("budi santoso", "Contoh Budi Santoso (FIKTIF)")
    assert names.same_person("Contoh Budi Santoso", "Contoh Budi Santoso (FIKTIF)")
    assert names.same_person("SITI  AMINAH", "Siti Aminah")
    assert names.same_person("Siti Aminnah", "Siti Aminah")  # one typo
    assert not names.same_person("Siti Rahayu", "Siti Aminah")
    assert names.plausible("Siti Aminah") and not names.plausible("1234 5678")


RIZKI = "Muhammad Rizki Ramadhan"


@pytest.mark.parametrize("typed,registered", [
    ("M. Rizki Ramadhan", RIZKI), ("M Rizki Ramadhan", RIZKI), ("Moh. Rizki Ramadhan", RIZKI),
    ("Muhamad Rizki Ramadhan", RIZKI),  # a spelling of Muhammad, not a typo
    ("Rizki Ramadhan", RIZKI), ("Muhammad Ramadhan", RIZKI),  # one part left out
    ("muhammad rizki ramadan", RIZKI), ("Muhammad Rizki Ramdhan", RIZKI),  # one typo
    ("Muhamad Rizki Ramadan", RIZKI), ("Muhammad Rizik Ramadhan", RIZKI),  # swapped letters
    ("nama saya Muhammad Rizki Ramadhan", RIZKI), ("namaku m. rizki ramadhan", RIZKI),
    ("Nama sy: Siti Aminah", "Siti Aminah"), ("bu siti aminah", "Siti Aminah"),
    ("Ibu Siti Aminah kak", "Siti Aminah"), ("pak budi santoso", "Budi Santoso"),
    ("saya Budi Santoso", "Budi Santoso"), ("BUDI   SANTOSO", "Budi Santoso"),
    ("Siti Nuraini", "Siti Nur Aini"), ("Siti Nur Aini", "Siti Nuraini"),  # spacing
    ("Jose Maruf", "José Ma'ruf"), ("Mas Joko", "Mas Joko"), ("Sukarno", "Sukarno"),
    ("ibu Suharti", "Suharti"),
])
def test_agreed_partial_matches(typed, registered):
    assert names.same_person(typed, registered)


@pytest.mark.parametrize("typed,registered", [
    ("Muhammad Rizki", RIZKI),  # the last part is never left out
    ("Muhammad Rizki R.", RIZKI),  # ...nor given as an initial
    ("Rizky Ramadhan", RIZKI),  # a left-out part and a typo
    ("Muhammad Rizki Pratama", RIZKI), ("Muhammad Fajar Ramadhan", RIZKI),  # another person
    ("Ahmad Rizki Ramadhan", RIZKI), ("M. R. Ramadhan", RIZKI), ("Rizki", RIZKI),
    ("Muhammad Rizky Ramadan", RIZKI),  # two typos
    ("Muhammad Rizki Ramadhan Putra", RIZKI),  # an extra part
    ("Budi S", "Budi Santoso"), ("B. Santoso", "Budi Santoso"), ("Budi", "Budi Santoso"),
    ("Santoso", "Budi Santoso"), ("Budi Susanto", "Budi Santoso"),
    ("Agus Widodo", "Agus Wibowo"), ("Rini Marlina", "Rina Marlina"),  # short parts: exact
    ("Siti Aminah", "Siti Aminah Putri"), ("Siti Rahma", "Nur Siti Aminah"),
    ("Suhartini", "Suharti"), ("nama saya", "Siti Aminah"), ("", "Siti Aminah"),
])
def test_a_different_name_does_not_pass(typed, registered):
    assert not names.same_person(typed, registered)


def test_lead_ins_are_stripped_before_the_plausibility_check():
    assert names.without_lead_ins("Nama saya: Budi Santoso!") == "Budi Santoso"
    assert names.without_lead_ins("nama sy bu Siti.") == "Siti"
    assert names.without_lead_ins("nama saya") == ""
