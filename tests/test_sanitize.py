from actions.sanitize import MAX_CHARS, Problem, check, clean


def test_clean_drops_control_characters_and_squeezes_spaces():
    assert clean("ha\x00lo\x07  \n kak\u200b") == "halo kak"


def test_empty_and_whitespace_only():
    assert check("")[1] is Problem.EMPTY
    assert check("   \n\t ")[1] is Problem.EMPTY
    assert check("\x00\x01\x02")[1] is Problem.EMPTY
    assert check(None)[1] is Problem.EMPTY


def test_too_long_is_refused_before_cleaning():
    assert check("a" * (MAX_CHARS + 1))[1] is Problem.TOO_LONG
    assert check("a" * MAX_CHARS) == ("a" * MAX_CHARS, None)


def test_emoji_and_symbols_only():
    assert check("😀😀🙏")[1] is Problem.NO_WORDS
    assert check("??? !!!")[1] is Problem.NO_WORDS
    assert check("👍🏽")[1] is Problem.NO_WORDS


def test_ordinary_text_passes():
    assert check("sy mau dftr gmn caranya 🙏") == ("sy mau dftr gmn caranya 🙏", None)


def test_a_message_to_send_keeps_its_lines():
    from actions.sanitize import clean_message

    raw = "Halo semua,\r\n\r\n\r\n\r\nBesok  jam 9.\rBawa\u2028buku\x00 kas\u202e\n\n  "
    assert clean_message(raw) == "Halo semua,\n\nBesok jam 9.\nBawa\nbuku kas"
    assert clean_message("satu baris") == clean("satu baris")
