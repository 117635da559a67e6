"""Indonesian mobile numbers: 08xxxxxxxxx or +628xxxxxxxxx (10-13 digits after the prefix
"0" or "+62"), stored as +62..."""

from __future__ import annotations

import re

from domain.numbers import fold_digits, is_ascii_digits

_SEPARATORS = re.compile(r"[\s.\-()]")


def normalise(text: str) -> str | None:
    """Return the number as +628..., or None when it is not a valid mobile number."""
    value = _SEPARATORS.sub("", fold_digits(text.strip()))
    if value.startswith("+62"):
        rest = value[3:]
    elif value.startswith("62"):
        rest = value[2:]
    elif value.startswith("0"):
        rest = value[1:]
    else:
        return None
    if not is_ascii_digits(rest) or not rest.startswith("8") or not 9 <= len(rest) <= 12:
        return None
    return f"+62{rest}"


def mask(phone: str) -> str:
    digits = re.sub(r"[^0-9]", "", phone)
    return f"+62{digits[2:5]}*****{digits[-3:]}" if len(digits) > 8 else "***"
