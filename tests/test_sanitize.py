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
