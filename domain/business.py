"""Everyday business words -> one of the seven Prokus fields.

The words live in a data file (`actions/business_lexicon.yml`) that content staff edit: for
each category a list of words and phrases. The matcher reads a whole answer such as
"sy jualan pecel lele di depan rumah" and finds the lexicon phrases in it:

- words are compared after light normalisation (lower case, punctuation and reduplication
  removed: "kue-kue", "kue2" -> "kue"), also without common affixes ("berjualan",
  "peternakan" -> "ternak", "menjahit" -> "jahit", "keripiknya" -> "keripik");
- a word of 5 letters or more may carry one typo (two from 8 letters on), not in its first
  letter, unless it is a common word of its own (COMMON: "batal" is not "bawal");
- the longest phrase wins ("mie ayam" is kuliner although "ayam" alone is farming), then
  one of the seven fields before the other categories, exact before approximate, then the
  earliest; a farm and visitors in one answer are agrowisata ("kebun jambu kristal buat
  wisata petik"), whichever phrase is longer; phrases of the category `abaikan` ("tidak
  tahu") only use up their words so that they match nothing else.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

IGNORE = "abaikan"  # phrases that hide their words from every other category
FARMING = "budi_daya_pertanian"
VISITORS = "agrowisata"  # a farm opened to visitors: wins over FARMING in the same answer
# Categories that are not one of the seven fields: at equal length a field wins
# ("keliling jualan bakso" is kuliner, "kerja di bengkel" is jasa).
OTHERS = frozenset({"lainnya", "belum_ada", "perlu_dinilai", IGNORE})

# Frequent words of an answer that are never business words, even with a typo.
_COMMON_WORDS = """
saya sy aku ak gue gw kami kita ibu bapak pak bu mas mbak suami istri anak keluarga
jual jualan berjualan menjual dagang berdagang dagangan usaha usahanya berusaha buka membuka
bikin membuat buat punya ada yang dan atau di ke dari dengan dgn sama untuk utk juga aja
saja sih nih deh dong ya iya kak rumah depan samping dekat pinggir jalan pasar kampung desa
sekolah kecil kecilan besar sendiri sudah udah udh baru lama tahun bulan hari setiap tiap
online sedikit banyak macam segala sambil kadang biasanya sekarang masih mau ingin pengen
angka angkatan antam badan bagian balai balas bandung batal batuk bawah berat berjalan besok
bosan buatkan bukan buruk butuh cerah commuter consent cukup dadah dalam dapet dasar datang
deras empat enggak gagal gratis hujan human jangan jelas jepang kabar kapal kapan kasih kenal
kenapa keterima konser kontak langsung lapar laris layak lebih loker lulus makin maret masuk
matur mayar membaik membantu menang menjaga mentor mudik murah nanti orang paham pakai paling
pangan partai pembatalan pengecekan pengertian peran pernah pertanyaan pinjaman prediksi
produktif programme pulih puluh rendang rusak sakit salah salam sampai sandi santai sedang
sedih selain semua senang sering sistem sulit tambah tanggal telegram tentang tepat tinggal
tolong tukar tuning wajib daftar dftr nama alamat nomor tanya nanya bisa boleh tidak belum
"""
COMMON = frozenset(_COMMON_WORDS.split())

PREFIXES = ("meny", "peny", "meng", "peng", "mem", "pem", "men", "pen", "ber", "per", "ter",
            "me", "pe", "be", "di")
SUFFIXES = ("nya", "kan", "an", "in")
_ASSIMILATED = {"meny": "s", "peny": "s", "mem": "p", "pem": "p", "men": "t", "pen": "t",
                "meng": "k", "peng": "k"}  # menyablon -> sablon, memotret -> potret


@dataclass(frozen=True)
class Match:
    """The category of an answer, the lexicon phrase behind it and the words it came from."""

    category: str
    phrase: str
    words: str


def words(text: str) -> list[str]:
    """Lower-case words without punctuation, reduplication or a trailing "2" ("kue2")."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"([^\W\d_]{2,})2\b", r"\1", text)
    tokens = re.findall(r"[^\W_]+", text)
    out: list[str] = []
    for token in tokens:
        if not out or out[-1] != token:
            out.append(token)
    return out


def stems(word: str) -> set[str]:
    """The word and the forms it has without common prefixes and suffixes."""
    found = {word}
    bases = {word}
    for suffix in SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            bases.add(word[: -len(suffix)])
    found |= bases
    for base in bases:
        for prefix in PREFIXES:
            if base.startswith(prefix) and len(base) - len(prefix) >= 4:
                rest = base[len(prefix):]
                found.add(rest)
                if prefix in _ASSIMILATED:
                    found.add(_ASSIMILATED[prefix] + rest)
    return found


def distance(a: str, b: str, limit: int) -> int:
    """Edit distance with transpositions (optimal string alignment), capped at limit + 1."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = ca != cb
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[-1]


def typos_allowed(word: str) -> int:
    return 0 if len(word) < 5 else (1 if len(word) < 8 else 2)


class Lexicon:
    """Phrases by category; `match` finds the category of a typed answer."""

    def __init__(self, entries: Mapping[str, Iterable[str]]) -> None:
        self.category: dict[tuple[str, ...], str] = {}
        for category, phrases in entries.items():
            for phrase in phrases or ():
                key = tuple(words(str(phrase)))
                if not key:
                    continue
                if self.category.get(key, category) != category:
                    raise ValueError(f"{phrase!r} is listed under {self.category[key]} "
                                     f"and {category}")
                self.category[key] = category
        self.by_first: dict[str, list[tuple[str, ...]]] = {}
        for key in self.category:
            self.by_first.setdefault(key[0], []).append(key)
        self.vocabulary = frozenset(w for key in self.category for w in key)
        self._fuzzy_pool = tuple(w for w in self.vocabulary if len(w) >= 5)
        self._cache: dict[str, dict[str, int]] = {}

    @classmethod
    def load(cls, path: Path) -> Lexicon:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
        if not isinstance(data, dict):
            raise ValueError(f"{path} must map categories to lists of words")
        return cls(data)

    def __len__(self) -> int:
        return len(self.category)

    def categories(self) -> set[str]:
        return set(self.category.values())

    def _readings(self, word: str) -> dict[str, int]:
        """Lexicon words this typed word may be, with the number of typos (0 or more)."""
        if word not in self._cache:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[word] = self._read(word)
        return self._cache[word]

    def _read(self, word: str) -> dict[str, int]:
        exact = {s: 0 for s in stems(word) if s in self.vocabulary}
        limit = typos_allowed(word)
        if exact or not limit or word in COMMON or not word.isalpha():
            return exact
        near: dict[str, int] = {}
        for candidate in self._fuzzy_pool:
            # A typo rarely hits the first letter; known words are not typos (COMMON).
            if candidate[0] != word[0]:
                continue
            cap = min(limit, typos_allowed(candidate))
            cost = distance(word, candidate, cap)
            if cost <= cap:
                near[candidate] = cost
        return near

    def match(self, text: str) -> Match | None:
        """The category of the best phrase in `text`, or None."""
        typed = words(text)
        readings = [self._readings(w) for w in typed]
        # (-length, not a field, typos, start, key): the best match sorts first.
        found: list[tuple[int, bool, int, int, tuple[str, ...]]] = []
        for start, options in enumerate(readings):
            for first, typos in options.items():
                for key in self.by_first.get(first, ()):
                    end = start + len(key)
                    if end > len(typed):
                        continue
                    total = typos
                    for offset, part in enumerate(key[1:], 1):
                        cost = readings[start + offset].get(part)
                        if cost is None:
                            break
                        total += cost
                    else:
                        found.append((-len(key), self.category[key] in OTHERS, total,
                                      start, key))
        used: set[int] = set()
        best: Match | None = None
        for *_, start, key in sorted(found):
            span = set(range(start, start + len(key)))
            if span & used:
                continue
            used |= span
            category = self.category[key]
            if category == IGNORE:
                continue
            match = Match(category, " ".join(key), " ".join(typed[start:start + len(key)]))
            if best is None:
                best = match
                if category != FARMING:
                    return best
            elif category == VISITORS:
                # A farm that takes visitors is agrowisata, however long the crop's name:
                # "kebun jambu kristal buat wisata petik".
                return match
        return best
