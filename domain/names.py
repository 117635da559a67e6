"""Comparing a typed full name with the registry's, forgivingly but not loosely.

The rule (agreed for issue 12; `same_person`). Both names are compared as lists of parts:
accents dropped, case folded, bracketed notes such as "(FIKTIF)" dropped, apostrophes
removed ("Ma'ruf" = "Maruf"), dots and hyphens as spaces. A typed name may start with a
lead-in ("nama saya", "nama sy", "namaku", "nami abdi", "jeneng kulo", "saya", "sy", "bu",
"ibu", "pak", "bapak", "mbak", "mas", "teh", "kang", ...) or end with a polite word ("kak"):
the name is compared both with and without them. The names match when they are equal, also
without spaces ("Nuraini" = "Nur Aini"), or when all of these hold:

1. every typed part matches a registry part, in order: no extra words;
2. a part matches when it is equal, a spelling of Muhammad (Muhamad, Mochammad...), two
   parts written together ("Nuraini" for "Nur Aini"), an initial ("M." or "M", also "Muh."
   or "Moh." for Muhammad), or one typo: one letter added, dropped, changed or two swapped
   in a registry part of at least 5 letters ("Aminnah" for "Aminah"; never in short parts,
   "Rina" is not "Rini");
3. the last registry part and at least two parts are written out in full (not an initial;
   a one-part name must be typed exactly);
4. at most one registry part is not written out (an initial, or left out: "Rizki Ramadhan"
   for "Muhammad Rizki Ramadhan"), never the last one;
5. at most one typo, and none together with a left-out part.

So "M. Rizki Ramadhan", "rizki ramadhan" and "Muhamad Rizki Ramadan" are Muhammad Rizki
Ramadhan, while "Muhammad Rizki" (last part missing), "Rizky Ramadhan" (a part missing and a
typo), "Muhammad Rizki Pratama" (a different part) and "Budi S" (one part in full) are not.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

_BRACKETS = re.compile(r"\([^)]*\)")
_APOSTROPHES = re.compile(r"['’ʼ`]")
_NON_LETTERS = re.compile(r"[^a-z\s]")
MAX_LETTERS, MAX_WORDS = 80, 8
TYPO_MIN_LETTERS = 5
# Besides letters (accented ones too) and spaces, a name may hold these: "Ma'ruf",
# "Siti Nur-Aini", "Moh. Yusuf" (apostrophes as phones type them: ' ’ ʼ `).
NAME_PUNCTUATION = frozenset("'’ʼ`-.")

# Words people put before (or after) their name: "nama saya ...", "bu Siti", "... kak".
LEAD_INS: tuple[tuple[str, ...], ...] = tuple(tuple(p.split()) for p in (
    "nama lengkap saya", "nama lengkap sy", "nama lengkap aku", "nama lengkap",
    "nama saya", "nama sy", "nama aku", "nama gue", "nama gw", "nama abdi", "nami abdi",
    "nama kulo", "nami kulo", "nama kula", "jeneng kulo", "jeneng kula", "jenengku", "nama aye",
    "nama ane", "nama", "namaku", "namanya", "nami",
    "saya", "sy", "aku", "adalah", "yaitu", "ialah",
    "bu", "ibu", "buk", "pak", "bapak", "mbak", "mba", "mas", "teh", "kang", "hj", "haji",
    "hajjah", "hajah",
))
TAILS = frozenset({"kak", "ka", "min", "bu", "pak", "mas", "mbak", "teh", "kang"})
_STRIPPED = re.compile(r"[,:;!?\"“”]")

# Spellings of Muhammad count as the same part; these short forms count as its initial.
MUHAMMAD = frozenset({"muhammad", "muhamad", "muhammmad", "mohammad", "mohamad", "mochammad",
                      "mochamad", "muchammad", "muchamad", "mukhammad", "mohammed", "muhamed"})
MUHAMMAD_SHORT = frozenset({"m", "muh", "moh", "mhd", "moch", "mohd", "muhd", "much", "mch"})


def _fold(text: str) -> str:
    """Accents dropped ("José" -> "Jose"), compatibility forms folded, casefolded."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def normalise(name: str) -> str:
    """Lowercase letters and single spaces; bracketed notes such as "(FIKTIF)" dropped,
    apostrophes removed."""
    text = _NON_LETTERS.sub(" ", _APOSTROPHES.sub("", _fold(_BRACKETS.sub(" ", name))))
    return " ".join(text.split())


def _name_char(ch: str) -> bool:
    """A letter (any script, with its accents), a space, or name punctuation."""
    return ch.isalpha() or ch.isspace() or ch in NAME_PUNCTUATION or (
        unicodedata.category(ch) in ("Mn", "Mc"))


def plausible(name: str) -> bool:
    """A full name: only letters, spaces, apostrophes, hyphens and dots; 2 to 80 letters;
    at most 8 words. Digits, emoji and other symbols are refused."""
    text = unicodedata.normalize("NFC", name)
    if not all(_name_char(ch) for ch in text):
        return False
    letters = sum(ch.isalpha() for ch in text)
    return 2 <= letters <= MAX_LETTERS and 1 <= len(text.split()) <= MAX_WORDS


def tidy(name: str) -> str:
    """A plausible name as it should be kept: NFC, single spaces."""
    return " ".join(unicodedata.normalize("NFC", name).split())


def _lead_in_length(words: list[str]) -> int:
    """How many leading words form a lead-in (the longest one), 0 if none."""
    for phrase in LEAD_INS:  # longer phrases come first in LEAD_INS
        if tuple(words[:len(phrase)]) == phrase:
            return len(phrase)
    return 0


def _strip_words(words: list[str], key, keep_one: bool = True) -> list[str]:
    """Drop leading lead-ins and trailing polite words (compared by `key`); with
    `keep_one`, never the last word ("Mas" may be a name)."""
    words = list(words)
    while words and (n := _lead_in_length([key(w) for w in words])) and (
            n < len(words) or not keep_one):
        words = words[n:]
    while len(words) > 1 and key(words[-1]) in TAILS:
        words = words[:-1]
    return words


def without_lead_ins(text: str) -> str:
    """The typed name without "nama saya", "bu", "pak"..., commas, colons, "!" or "?":
    "Nama saya: Budi Santoso!" -> "Budi Santoso", "nama saya" -> "". The rest is kept as
    typed (an emoji still makes the name implausible)."""
    words = _STRIPPED.sub(" ", text).split()
    words = _strip_words(words, lambda w: normalise(w).replace(" ", ""), keep_one=False)
    return " ".join(words).strip(" .")


def _one_edit(a: str, b: str) -> bool:
    """True when a and b differ by exactly one insertion, deletion, substitution or swap of
    two neighbouring letters."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                                  and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long = sorted((a, b), key=len)
    i = next((k for k in range(len(short)) if short[k] != long[k]), len(short))
    return short[i:] == long[i + 1:]


@dataclass(frozen=True)
class _Tally:
    full: int = 0  # registry parts written out (equal, variant, joined or with a typo)
    short: int = 0  # registry parts given as an initial or left out
    missing: int = 0  # registry parts left out
    typos: int = 0
    last_full: bool = False  # the last registry part was written out

    def add(self, **changes: int | bool) -> _Tally:
        values = {k: getattr(self, k) + v if not isinstance(v, bool) else v
                  for k, v in changes.items()}
        return _Tally(**{**self.__dict__, **values})


def _same_part(typed: str, registered: str) -> bool:
    return typed == registered or (typed in MUHAMMAD and registered in MUHAMMAD)


def _initial(typed: str, registered: str) -> bool:
    return (len(typed) == 1 and registered.startswith(typed)) or (
        typed in MUHAMMAD_SHORT and registered in MUHAMMAD)


def _alignments(typed: list[str], reg: list[str], i: int = 0, j: int = 0,
                tally: _Tally = _Tally()) -> Iterator[_Tally]:
    """Every way of matching typed[i:] onto reg[j:] in order, with its tally."""
    if i == len(typed):
        left = len(reg) - j
        yield tally.add(short=left, missing=left) if left else tally
        return
    if j == len(reg):
        return  # a typed word that matches nothing
    last = j == len(reg) - 1
    t, r = typed[i], reg[j]
    yield from _alignments(typed, reg, i, j + 1, tally.add(short=1, missing=1))
    if _same_part(t, r):
        yield from _alignments(typed, reg, i + 1, j + 1, tally.add(full=1, last_full=last))
    elif _initial(t, r):
        yield from _alignments(typed, reg, i + 1, j + 1, tally.add(short=1))
    elif len(r) >= TYPO_MIN_LETTERS and _one_edit(t, r):
        yield from _alignments(typed, reg, i + 1, j + 1,
                               tally.add(full=1, typos=1, last_full=last))
    if j + 1 < len(reg) and t == r + reg[j + 1]:  # "nuraini" for "nur aini"
        yield from _alignments(typed, reg, i + 1, j + 2,
                               tally.add(full=2, last_full=j + 1 == len(reg) - 1))
    if i + 1 < len(typed) and t + typed[i + 1] == r:  # "nur aini" for "nuraini"
        yield from _alignments(typed, reg, i + 2, j + 1, tally.add(full=1, last_full=last))


def _acceptable(tally: _Tally, parts: int) -> bool:
    if parts == 1:
        return tally.full == 1 and tally.typos == 0 and tally.short == 0
    return (tally.last_full and tally.full >= 2 and tally.short <= 1 and tally.typos <= 1
            and not (tally.typos and tally.missing))


def _matches(typed: list[str], registered: list[str]) -> bool:
    if not typed or not registered:
        return False
    if "".join(typed) == "".join(registered):
        return True
    if len(typed) > MAX_WORDS or len(registered) > 2 * MAX_WORDS:
        return False
    return any(_acceptable(t, len(registered)) for t in _alignments(typed, registered))


def same_person(typed: str, registered: str) -> bool:
    """Whether the typed name is the registry's name under the rule in the module docstring
    (lead-ins, case, spacing, initials, one left-out part, one typo)."""
    words = normalise(typed).split()
    reg = normalise(registered).split()
    candidates = [words, _strip_words(words, lambda w: w)]
    return any(_matches(c, reg) for c in candidates)
