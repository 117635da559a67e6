"""Official regions (issue 15): load the idn-area-data CSVs into `regions`, and match what
people type ("kab bogor", "Desa Pakan Sari", "cibinnong") to Kemendagri codes.

Matching works on an in-process index of every region (code, level, normalised names),
read from the table once per database (or, for a question within a parent, just that
parent's subtree) and kept until `load()` changes it there; the
candidates of one question are the children of a parent (or one level of the whole
country), scored with rapidfuzz on the names without spaces, so "pakan sari" is
"Pakansari" and a typo costs a few points.
"""

from __future__ import annotations

import csv
import re
import threading
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rapidfuzz import fuzz, process
from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.orm import Session

from db.models import Region
from domain.regions import zone_name

DATA_DIR = Path(__file__).resolve().parent / "regions_data"
LEVELS = ("province", "kabupaten", "kecamatan", "desa")
# file, parent column, level; in loading order (parents first).
FILES = (
    ("provinces.csv", None, "province"),
    ("regencies.csv", "province_code", "kabupaten"),
    ("districts.csv", "regency_code", "kecamatan"),
    ("villages.csv", "district_code", "desa"),
)
BATCH = 5000


# ------------------------------------------------------------------------ normalising
_PUNCT = re.compile(r"[^a-z0-9 ]+")
_SPACES = re.compile(r"\s+")
_PARENS = re.compile(r"\(([^)]*)\)")

# Words that only say what kind of region the text is. The value is (level, kind).
_TYPE_WORDS: dict[str, tuple[str, str | None]] = {
    "provinsi": ("province", None), "propinsi": ("province", None), "prov": ("province", None),
    "prop": ("province", None),
    "kabupaten": ("kabupaten", "kabupaten"), "kab": ("kabupaten", "kabupaten"),
    "kabupatan": ("kabupaten", "kabupaten"), "kabu": ("kabupaten", "kabupaten"),
    "kota": ("kabupaten", "kota"), "kodya": ("kabupaten", "kota"),
    "kotamadya": ("kabupaten", "kota"), "kotmadya": ("kabupaten", "kota"),
    "kecamatan": ("kecamatan", None), "kec": ("kecamatan", None),
    "kecamatn": ("kecamatan", None), "kcm": ("kecamatan", None), "kc": ("kecamatan", None),
    "distrik": ("kecamatan", None),
    "desa": ("desa", "desa"), "ds": ("desa", "desa"), "des": ("desa", "desa"),
    "kelurahan": ("desa", "kelurahan"), "kel": ("desa", "kelurahan"),
    "kelurahn": ("desa", "kelurahan"), "kelu": ("desa", "kelurahan"),
    "kampung": ("desa", "desa"), "kampong": ("desa", "desa"), "nagari": ("desa", "desa"),
    "gampong": ("desa", "desa"),
}
# Two-word type prefixes ("desa adat", "kota administrasi").
_TYPE_PAIRS = {("desa", "adat"): ("desa", "desa"), ("kota", "administrasi"): ("kabupaten", "kota"),
               ("kab", "administrasi"): ("kabupaten", "kabupaten"),
               ("kabupaten", "administrasi"): ("kabupaten", "kabupaten"),
               ("kota", "adm"): ("kabupaten", "kota")}

# Everyday short forms inside names.
_WORDS = {
    "kep": "kepulauan", "kepl": "kepulauan", "kpl": "kepulauan",
    "utr": "utara", "ut": "utara", "sel": "selatan", "sltn": "selatan", "slt": "selatan",
    "brt": "barat", "bar": "barat", "tmr": "timur", "tim": "timur", "tgh": "tengah",
    "tng": "tengah", "tenggara": "tenggara", "sumatra": "sumatera", "sumatera": "sumatera",
    "jkt": "jakarta", "pd": "pondok", "pdk": "pondok", "sei": "sungai", "sp": "simpang",
    "tj": "tanjung", "tg": "tanjung", "tjg": "tanjung", "kp": "kampung", "kpg": "kampung",
    "mns": "meunasah", "mns.": "meunasah", "pulo": "pulau",
}
# Common names of provinces.
_PROVINCE_ALIASES = {
    "dki": "dki jakarta", "jakarta": "dki jakarta", "jabar": "jawa barat",
    "jateng": "jawa tengah", "jatim": "jawa timur", "diy": "daerah istimewa yogyakarta",
    "yogya": "daerah istimewa yogyakarta", "jogja": "daerah istimewa yogyakarta",
    "yogyakarta": "daerah istimewa yogyakarta", "sumut": "sumatera utara",
    "sumbar": "sumatera barat", "sumsel": "sumatera selatan", "babel": "kepulauan bangka belitung",
    "bangka belitung": "kepulauan bangka belitung", "kepri": "kepulauan riau",
    "kalbar": "kalimantan barat", "kalteng": "kalimantan tengah",
    "kalsel": "kalimantan selatan", "kaltim": "kalimantan timur", "kaltara": "kalimantan utara",
    "sulut": "sulawesi utara", "sulteng": "sulawesi tengah", "sulsel": "sulawesi selatan",
    "sultra": "sulawesi tenggara", "sulbar": "sulawesi barat", "ntb": "nusa tenggara barat",
    "ntt": "nusa tenggara timur", "malut": "maluku utara", "nad": "aceh",
    "papua bar": "papua barat", "pabar": "papua barat", "papua barat daya": "papua barat daya",
}


def _fold(text: str) -> str:
    """Lower case, ASCII, punctuation to spaces, single spaces."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = text.lower().replace("'", "").replace("`", "")
    return _SPACES.sub(" ", _PUNCT.sub(" ", text)).strip()


def _expand(words: list[str]) -> list[str]:
    return [_WORDS.get(w, w) for w in words]


def normalise(name: str) -> str:
    """An official name as it is compared: folded, without a "Kabupaten"/"Kota" prefix, and
    without a part in parentheses ("Misool (Misool Utara)" -> "misool")."""
    words = _fold(_PARENS.sub(" ", name)).split()
    if len(words) > 1 and words[0] in ("kabupaten", "kota"):
        words = words[1:]
        if len(words) > 1 and words[0] == "administrasi":
            words = words[1:]
    return " ".join(_expand(words))


def alternative_names(name: str) -> list[str]:
    """Other names the dataset carries for one region: the part in parentheses (often the
    old name) and each side of a slash ("Pulo Lon / Pulo Dayah")."""
    found = [normalise(inner) for inner in _PARENS.findall(name)]
    outer = _PARENS.sub(" ", name)
    if "/" in outer:
        parts = [normalise(p) for p in outer.split("/")]
        # "Lalai I/II": the parts after the first are suffixes, not names.
        if all(len(p.replace(" ", "")) >= 4 for p in parts):
            found.extend(parts)
    main = normalise(name)
    return [alt for alt in dict.fromkeys(found) if len(alt.replace(" ", "")) >= 3 and alt != main]


@dataclass(frozen=True)
class Query:
    """What was typed, folded: the name part, and the level and kind its words imply."""

    name: str
    level: str | None = None
    kind: str | None = None


def parse_query(text: str) -> Query:
    """Split "Kab. Bogor" into ("bogor", kabupaten, kabupaten), "kel pakan sari" into
    ("pakan sari", desa, kelurahan); type words are taken from the front only, so
    "Kotabaru" and "Kota Bangun" (real names) stay names when nothing else is left."""
    words = _fold(text).split()
    level = kind = None
    while len(words) > 1:
        pair = tuple(words[:2])
        if len(words) > 2 and pair in _TYPE_PAIRS:
            level, kind = _TYPE_PAIRS[pair]
            words = words[2:]
            continue
        if words[0] in _TYPE_WORDS:
            level, kind = _TYPE_WORDS[words[0]]
            words = words[1:]
            continue
        break
    return Query(" ".join(_expand(words)), level, kind)


def _kind(level: str, code: str, name: str) -> str | None:
    if level == "kabupaten":
        return "kota" if name.lower().startswith("kota") else "kabupaten"
    if level == "desa":
        return "kelurahan" if code.split(".")[-1].startswith("1") else "desa"
    return None


# --------------------------------------------------------------------------- loading
@dataclass
class LoadResult:
    counts: dict[str, int] = field(default_factory=dict)
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0


def read_rows(data_dir: Path = DATA_DIR) -> Iterator[dict[str, str | None]]:
    """Every region of the CSVs in `data_dir`, parents before children, as table rows."""
    for filename, parent_column, level in FILES:
        with open(data_dir / filename, encoding="utf-8-sig", newline="") as fh:
            for row in csv.DictReader(fh):
                code, name = row["code"].strip(), _SPACES.sub(" ", row["name"]).strip()
                yield {
                    "code": code,
                    "parent_code": row[parent_column].strip() if parent_column else None,
                    "level": level,
                    "kind": _kind(level, code, name),
                    "name": name,
                    "name_norm": normalise(name)[:100],
                    "digits": code.replace(".", ""),
                    "zone": zone_name(code) if level == "province" else None,
                }


def _batches(rows: list[dict], size: int = BATCH) -> Iterator[list[dict]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def load(target: Session | Connection | Engine, data_dir: Path = DATA_DIR,
         progress: Callable[[int], None] | None = None) -> LoadResult:
    """Make `regions` equal to the CSVs in `data_dir`, in one transaction: insert new codes,
    update changed ones, delete codes the data no longer has. Loading the same data again
    changes nothing. `progress(n)` is told of every n rows handled. A Session or Connection
    is used inside the caller's transaction (the caller commits); an Engine gets its own."""
    if isinstance(target, Engine):
        with target.begin() as conn:
            return load(conn, data_dir, progress)
    rows = list(read_rows(data_dir))
    columns = ("parent_code", "level", "kind", "name", "name_norm", "digits", "zone")
    current = {r[0]: tuple(r[1:]) for r in target.execute(
        select(Region.code, *(getattr(Region, c) for c in columns)))}
    result = LoadResult()
    new, changed = [], []
    for row in rows:
        result.counts[row["level"]] = result.counts.get(row["level"], 0) + 1
        old = current.pop(row["code"], None)
        if old is None:
            new.append(row)
        elif old != tuple(row[c] for c in columns):
            changed.append(row)
        else:
            result.unchanged += 1
    stale = sorted(current)
    if progress:
        progress(result.unchanged)
    for batch in _batches(stale):
        target.execute(delete(Region).where(Region.code.in_(batch)))
        if progress:
            progress(len(batch))
    table = Region.__table__
    for batch in _batches(new):
        target.execute(insert(table), batch)
        if progress:
            progress(len(batch))
    if changed:
        from sqlalchemy import bindparam

        statement = (update(table).where(table.c.code == bindparam("b_code"))
                     .values({c: bindparam(c) for c in columns}))
        for batch in _batches(changed):
            target.execute(statement, [{**r, "b_code": r["code"]} for r in batch])
            if progress:
                progress(len(batch))
    result.inserted, result.updated, result.deleted = len(new), len(changed), len(stale)
    if new or changed or stale:
        invalidate(target)
    return result


def total_rows(data_dir: Path = DATA_DIR) -> int:
    """How many regions the CSVs hold (for a progress bar)."""
    total = 0
    for filename, _parent, _level in FILES:
        with open(data_dir / filename, "rb") as fh:
            total += sum(1 for _ in fh) - 1
    return total


# --------------------------------------------------------------------------- matching
@dataclass(frozen=True)
class Candidate:
    code: str
    name: str
    level: str
    score: float


@dataclass
class _Slice:
    """The candidates of one question: parallel lists, one entry per name (a region with
    an old name has two entries)."""

    codes: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)  # names without spaces, compared


@dataclass
class _Index:
    name: dict[str, str] = field(default_factory=dict)
    level: dict[str, str] = field(default_factory=dict)
    kind: dict[str, str | None] = field(default_factory=dict)
    names: dict[str, list[str]] = field(default_factory=dict)  # code -> normalised names
    children: dict[str | None, list[str]] = field(default_factory=dict)
    slices: dict[tuple[str | None, str | None], _Slice] = field(default_factory=dict)

    def descendants(self, code: str | None, level: str | None) -> Iterator[str]:
        """Codes under `code` (the whole country for None), down to `level` (all levels
        when None), level by level."""
        frontier = [code]
        if level:
            depth = LEVELS.index(level)
        else:  # the whole country: provinces and kabupaten/kota only
            depth = len(LEVELS) - 1 if code is not None else LEVELS.index("kabupaten")
        first = 0 if code is None else LEVELS.index(self.level[code]) + 1
        for current in range(first, len(LEVELS)):
            frontier = [c for parent in frontier for c in self.children.get(parent, ())]
            if not frontier:
                return
            if level is None or current == depth:
                yield from frontier
            if current >= depth:
                return

    def slice(self, within: str | None, level: str | None) -> _Slice:
        key = (within, level)
        found = self.slices.get(key)
        if found is None:
            found = _Slice()
            for code in self.descendants(within, level):
                for norm in self.names[code]:
                    found.codes.append(code)
                    found.keys.append(norm.replace(" ", ""))
            if len(self.slices) > 20000:  # bound the memory of a long-running process
                self.slices.clear()
            self.slices[key] = found
        return found


_INDEXES: dict[str, _Index] = {}
# Subtrees read for one `within` before the whole index was needed: {(database, code): index}
_SUBTREES: dict[tuple[str, str], _Index] = {}
_LOCK = threading.Lock()
_COLUMNS = (Region.code, Region.parent_code, Region.level, Region.kind, Region.name,
            Region.name_norm)


def _cache_key(target: Session | Connection | Engine) -> str:
    bind = target.get_bind() if isinstance(target, Session) else target
    engine = bind.engine if isinstance(bind, Connection) else bind
    return engine.url.render_as_string(hide_password=True)


def invalidate(target: Session | Connection | Engine | None = None) -> None:
    """Forget the in-process index (of one database, or of all)."""
    with _LOCK:
        if target is None:
            _INDEXES.clear()
            _SUBTREES.clear()
        else:
            key = _cache_key(target)
            _INDEXES.pop(key, None)
            for subtree in [k for k in _SUBTREES if k[0] == key]:
                del _SUBTREES[subtree]


def _add(index: _Index, rows) -> None:
    for code, parent, level, kind, name, norm in rows:
        index.name[code], index.level[code], index.kind[code] = name, level, kind
        index.names[code] = [norm, *alternative_names(name)]
        index.children.setdefault(parent, []).append(code)


def _top(target: Session | Connection) -> _Index:
    """Provinces and kabupaten/kota only (552 rows), for a question without a parent in a
    process that has not read the whole table."""
    key = (_cache_key(target), "")
    index = _SUBTREES.get(key)
    if index is None:
        index = _Index()
        _add(index, target.execute(select(*_COLUMNS).where(
            Region.level.in_(("province", "kabupaten"))).order_by(Region.code)))
        if not index.name:
            raise RegionsNotLoaded(
                "The regions table is empty: run `prokus regions load` (or `make db`).")
        with _LOCK:
            _SUBTREES[key] = index
    return index


def _subtree(target: Session | Connection, code: str) -> _Index | None:
    """`code` and every region under it, read through the parent index (a few ms), for a
    `within` question in a process that has not read the whole table (`prokus regions
    match --within`, a bot's first questions). None when the code is unknown."""
    key = (_cache_key(target), code)
    index = _SUBTREES.get(key)
    if index is not None:
        return index
    index = _Index()
    _add(index, target.execute(select(*_COLUMNS).where(Region.code == code)))
    if not index.name:
        if target.execute(select(Region.code).limit(1)).first() is None:
            raise RegionsNotLoaded(
                "The regions table is empty: run `prokus regions load` (or `make db`).")
        return None
    parents = [code]
    while parents:
        rows = []
        for start in range(0, len(parents), 500):
            rows.extend(target.execute(select(*_COLUMNS).where(
                Region.parent_code.in_(parents[start:start + 500])).order_by(Region.code)))
        _add(index, rows)
        parents = [row[0] for row in rows]
    with _LOCK:
        if len(_SUBTREES) > 5000:
            _SUBTREES.clear()
        _SUBTREES[key] = index
    return index


def _index(target: Session | Connection) -> _Index:
    key = _cache_key(target)
    index = _INDEXES.get(key)
    if index is not None:
        return index
    with _LOCK:
        index = _INDEXES.get(key)
        if index is not None:
            return index
        index = _Index()
        _add(index, target.execute(select(*_COLUMNS).order_by(Region.code)))
        if not index.name:
            raise RegionsNotLoaded(
                "The regions table is empty: run `prokus regions load` (or `make db`).")
        _INDEXES[key] = index
        return index


class RegionsNotLoaded(RuntimeError):
    """The table has no rows yet."""


def get(session: Session, code: str) -> Region | None:
    """One region by its dotted code or its digits ("3201011007")."""
    code = code.strip()
    if "." not in code:
        return session.scalar(select(Region).where(Region.digits == code))
    return session.get(Region, code)


def dotted(code: str) -> str:
    """"3201011007" -> "32.01.01.1007"; a dotted code is returned as it is."""
    code = code.strip()
    if "." in code or not code.isdigit():
        return code
    parts = [code[:2], code[2:4], code[4:6], code[6:]]
    return ".".join(p for p in parts if p)


_LEVEL_RANK = {level: rank for rank, level in enumerate(LEVELS)}


def _penalty(query: Query, level: str, kind: str | None) -> float:
    """Points off when the typed type word does not fit: "kab bogor" is not Kota Bogor
    (close, not the same); "desa" for a kelurahan is everyday usage (a little)."""
    points = 0.0
    if query.level and level != query.level:
        points += 5
    if query.kind and kind and kind != query.kind:
        points += 8 if level == "kabupaten" else 2
    return points


def match(session: Session | Connection, text: str, within: str | None = None,
          level: str | None = None, limit: int = 5) -> list[Candidate]:
    """The regions that `text` most likely names, best first (score 0-100).

    `within`: a region code (dotted or digits); only regions under it are candidates, never
    one elsewhere. `level`: province, kabupaten, kecamatan or desa; when not given, the level
    named in the text ("kab.", "kec.", "desa", ...) is used, else the level just under
    `within`, else provinces and kabupaten/kota (a kecamatan or desa name alone, anywhere in
    the country, is too often ambiguous; ask for it with `level`)."""
    if level is not None and level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}")
    query = parse_query(text)
    if within is None:
        index = _INDEXES.get(_cache_key(session))
        if index is None:
            top = level in (None, "province", "kabupaten") and \
                query.level in (None, "province", "kabupaten")
            index = _top(session) if top else _index(session)
    else:
        within = dotted(within)
        index = _INDEXES.get(_cache_key(session)) or _subtree(session, within)
        if index is None or within not in index.name:
            raise ValueError(f"unknown region code {within!r}")
    floor = LEVELS.index(index.level[within]) if within is not None else -1
    if query.level is not None and (
            (level is not None and query.level != level) or LEVELS.index(query.level) <= floor):
        # "Kota Bangun" within a kabupaten: not a kota, a kecamatan whose name has "kota".
        query = Query(" ".join(_expand(_fold(text).split())))
    level = level or query.level
    if level is None and within is not None:
        level = LEVELS[floor + 1] if floor + 1 < len(LEVELS) else None
    if level is not None and LEVELS.index(level) <= floor:
        return []
    name = query.name
    if not name:
        return []
    # (compared text, whether the type word stripped from the front counts)
    queries = [(name.replace(" ", ""), True)]
    if level in (None, "province") and within is None and name in _PROVINCE_ALIASES:
        queries.append((_PROVINCE_ALIASES[name].replace(" ", ""), True))
    if query.level is not None:
        # The type word may really be part of a name ("Kota Waringin Barat", "Desa Baru").
        queries.append((" ".join(_expand(_fold(text).split())).replace(" ", ""), False))
    candidates = index.slice(within, level)
    if not candidates.keys:
        return []
    best: dict[str, float] = {}
    for q, hinted in queries:
        for _key, score, position in process.extract(
                q, candidates.keys, scorer=fuzz.ratio, limit=max(limit * 4, 20)):
            code = candidates.codes[position]
            if hinted:
                score -= _penalty(query, index.level[code], index.kind[code])
            if score > best.get(code, -1.0):
                best[code] = score
    scored = [(round(max(0.0, min(100.0, score)), 1), code) for code, score in best.items()]
    scored.sort(key=lambda item: (-item[0], _LEVEL_RANK[index.level[item[1]]],
                                  index.kind[item[1]] == "kota", item[1]))
    return [Candidate(code, index.name[code], index.level[code], score)
            for score, code in scored[:limit]]



# ------------------------------------------------------------- codes typed anywhere
_DOTTED = re.compile(r"\d{2}(\.\d{2}(\.\d{2}(\.\d{4})?)?)?")
_CODE_DIGITS = (2, 4, 6, 10)


class UnknownRegion(ValueError):
    """A code of the right shape that the (loaded) table does not have."""

    def __init__(self, code: str) -> None:
        super().__init__(f"unknown region code {dotted(code)}")
        self.code = code


def normalise_code(text: str) -> str:
    """A region code as typed, dotted or not ("32.01", "3201", " 32.01.05 ", "32.01.05.2001"),
    as its digits ("3201"). ValueError when it is not shaped like a province (2 digits),
    kabupaten (4), kecamatan (6) or desa (10) code."""
    code = (text or "").strip()
    if "." in code:
        if not _DOTTED.fullmatch(code):
            raise ValueError(f"not a region code: {code!r} (e.g. 32, 32.01, 32.01.05)")
        return code.replace(".", "")
    if not (code.isascii() and code.isdigit()) or len(code) not in _CODE_DIGITS:
        raise ValueError(f"not a region code: {code!r} (e.g. 32, 32.01, 32.01.05)")
    return code


def loaded(session: Session | Connection) -> bool:
    """Whether `prokus regions load` has filled the table (codes can be checked)."""
    return session.execute(select(Region.code).limit(1)).first() is not None


def known(session: Session, code: str) -> Region | None:
    """The region of a code typed dotted or as digits, or None when the table does not have
    it (or the text is not a code). Only meaningful when `loaded()`."""
    try:
        digits = normalise_code(code)
    except ValueError:
        return None
    return session.scalar(select(Region).where(Region.digits == digits))


def check_code(session: Session, code: str) -> str:
    """The digits of a code an operator typed (a mentor's or an account's region, a
    broadcast's prefix): UnknownRegion when the table is loaded and lacks it; when the
    table is empty the code is taken on its shape alone (as before the table existed)."""
    digits = code.strip().replace(".", "")
    if loaded(session) and known(session, code) is None:
        raise UnknownRegion(digits)
    return digits


def digits_at(session: Session | Connection, level: str) -> set[str]:
    """Every code of one level as digits, in one query (the KPM import checks its
    `kode_wilayah` against the desa set in memory, not with a query per row)."""
    return set(session.execute(select(Region.digits).where(Region.level == level)).scalars())


def zone_of(session: Session, code: str) -> str | None:
    """WIB, WITA or WIT of the province of `code` (dotted or digits, any level), as stored in
    the table; None when the table does not have that province. It always equals
    domain.regions.zone_name(code), which schedules and reminders use (pure, no database):
    the loader fills `zone` from it, and tests/test_region_codes.py checks every province."""
    digits = code.strip().replace(".", "")[:2]
    return session.scalar(select(Region.zone).where(Region.digits == digits,
                                                    Region.level == "province"))
