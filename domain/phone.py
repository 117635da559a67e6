"""Indonesian mobile numbers: 08xxxxxxxxx or +628xxxxxxxxx (10-13 digits after the prefix
"0" or "+62"), stored as +62..."""

from __future__ import annotations

import re

from domain.numbers import fold_digits, is_ascii_digits

_SEPARATORS = re.compile(r"[\s.\-()]")
# Words people put before the number: "no hp 0812...", "nomor wa sy: +62812...", "hp 0812".
_LEAD_IN = re.compile(
    r"^(?:(?:ini|itu)\s+)?(?:(?:nomor|nomer|nomr|nmor|nmr|no)\.?\s*)?"
    r"(?:(?:hp|h\.p\.?|handphone|hape|ponsel|wa|whatsapp|watsap|telp|telpon|telepon|tlp|tel)"
    r"(?:nya)?\b\.?\s*)?(?:(?:sy|saya|aku|ku|gw|gue)\b\s*)?(?:(?:adalah|yaitu|yakni)\b)?"
    r"\s*[:=]?\s*", re.IGNORECASE)


def strip_lead_in(text: str) -> str:
    """The text without a lead-in such as "no hp", "nomor wa saya:" before the number."""
    value = text.strip()
    rest = _LEAD_IN.sub("", value, count=1)
    return rest if rest[:1].isdigit() or rest[:1] == "+" else value


def normalise(text: str) -> str | None:
    """Return the number as +628..., or None when it is not a valid mobile number."""
    value = _SEPARATORS.sub("", fold_digits(strip_lead_in(fold_digits(text))))
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
