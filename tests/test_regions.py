"""Official regions (issue 15): the loader, `prokus regions`, and matching typed names."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.cli import main
from db import regions
from db.engine import make_engine
from db.migrate import upgrade
from db.models import Region

VARIANTS = Path(__file__).resolve().parent / "data" / "region_variants.yml"
FILES = {"province": "provinces.csv", "kabupaten": "regencies.csv",
         "kecamatan": "districts.csv", "desa": "villages.csv"}


def csv_counts() -> dict[str, int]:
    counts = {}
    for level, filename in FILES.items():
        with open(regions.DATA_DIR / filename, encoding="utf-8", newline="") as fh:
            counts[level] = sum(1 for _ in csv.DictReader(fh))
    return counts


def table_counts(session) -> dict[str, int]:
    return dict(session.execute(select(Region.level, func.count()).group_by(Region.level)).all())


@pytest.fixture(scope="module")
def loaded_url(tmp_path_factory) -> str:
    """A SQLite database migrated and loaded once for this module's matching tests."""
    url = f"sqlite:///{tmp_path_factory.mktemp('regions') / 'regions.db'}"
    upgrade(url)
    engine = make_engine(url)
    regions.load(engine)
    engine.dispose()
    return url


@pytest.fixture(scope="module")
def session(loaded_url):
    engine = make_engine(loaded_url)
    with Session(engine) as s:
        yield s
    engine.dispose()


def test_the_shipped_data_has_the_counts_of_the_issue():
    assert csv_counts() == {"province": 38, "kabupaten": 514, "kecamatan": 7285, "desa": 83762}
    assert (regions.DATA_DIR / "LICENSE.md").read_text().startswith("# Open Database License")
    assert "ODbL" in (regions.DATA_DIR / "README.md").read_text()


def test_load_gives_the_csv_counts_and_loading_again_changes_nothing(engine):
    first = regions.load(engine)
    assert first.inserted == sum(csv_counts().values())
    with Session(engine) as s:
        assert table_counts(s) == csv_counts()
        bogor = s.get(Region, "32.01")
        assert (bogor.name, bogor.level, bogor.kind, bogor.name_norm, bogor.parent_code,
                bogor.digits) == ("Kabupaten Bogor", "kabupaten", "kabupaten", "bogor", "32",
                                  "3201")
        assert s.get(Region, "32.01.01.1007").kind == "kelurahan"
    second = regions.load(engine)
    assert (second.inserted, second.updated, second.deleted) == (0, 0, 0)
    with Session(engine) as s:
        assert table_counts(s) == csv_counts()


def test_load_updates_and_deletes_what_changed(engine, tmp_path):
    regions.load(engine)
    changed = tmp_path / "data"
    changed.mkdir()
    for filename in FILES.values():
        lines = (regions.DATA_DIR / filename).read_text(encoding="utf-8").splitlines()
        if filename == "villages.csv":
            lines = [line.replace(",Pakansari", ",Pakan Sari") for line in lines[:-1]]
        (changed / filename).write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = regions.load(engine, changed)
    assert (result.inserted, result.updated, result.deleted) == (0, 1, 1)
    with Session(engine) as s:
        assert s.get(Region, "32.01.01.1007").name == "Pakan Sari"
        assert table_counts(s)["desa"] == csv_counts()["desa"] - 1


def test_match_before_loading_says_what_to_run(sqlite_engine):
    regions.invalidate()
    with Session(sqlite_engine) as s, pytest.raises(regions.RegionsNotLoaded, match="load"):
        regions.match(s, "bogor")


@pytest.mark.parametrize(("text", "expected"), [
    ("Kab. Bogor", ("bogor", "kabupaten", "kabupaten")),
    ("KODYA  bogor", ("bogor", "kabupaten", "kota")),
    ("kel. pakan-sari", ("pakan sari", "desa", "kelurahan")),
    ("Kec. Tj. Morawa", ("tanjung morawa", "kecamatan", None)),
    ("Kotabaru", ("kotabaru", None, None)),
    ("Desa Adat Ayapo", ("ayapo", "desa", "desa")),
])
def test_parse_query(text, expected):
    query = regions.parse_query(text)
    assert (query.name, query.level, query.kind) == expected


def test_old_names_in_parentheses_are_matched(session):
    # 96.03.01 "Misool (Misool Utara)": the part in parentheses is a name too.
    found = regions.match(session, "misool utara", within="96.03")
    assert found[0].code == "96.03.01"


def test_within_never_goes_outside_the_parent(session):
    # Cibinong is also a desa in Cianjur and Sukabumi; within Kecamatan Jonggol it is not.
    for candidate in regions.match(session, "cibinong", within="32.01.06", limit=20):
        assert candidate.code.startswith("32.01.06.")
    found = regions.match(session, "pakan sari", within="3201", level="desa", limit=20)
    assert found[0].code == "32.01.01.1007"
    assert all(c.code.startswith("32.01.") for c in found)
    with pytest.raises(ValueError, match="unknown"):
        regions.match(session, "x", within="99.99")


def test_the_typed_variants_reach_the_accuracy_of_the_issue(session, capsys):
    items = yaml.safe_load(VARIANTS.read_text(encoding="utf-8"))
    assert len(items) >= 150
    assert len({item["code"][:2] for item in items}) >= 20  # many provinces
    top1 = top5 = 0
    misses = []
    for item in items:
        codes = [c.code for c in regions.match(session, item["text"], within=item.get("within"),
                                                level=item.get("level"), limit=5)]
        top1 += codes[:1] == [item["code"]]
        top5 += item["code"] in codes
        if codes[:1] != [item["code"]]:
            misses.append((item["text"], item["code"], codes[:3]))
        if item.get("within"):
            assert all(c.startswith(item["within"] + ".") for c in codes)
    with capsys.disabled():
        print(f"\nregion matching on {len(items)} variants: top-1 {top1 / len(items):.3f}, "
              f"top-5 {top5 / len(items):.3f}; misses {misses}")
    assert top1 / len(items) >= 0.95, misses
    assert top5 / len(items) >= 0.99, misses


def test_cli_match_prints_code_name_score(loaded_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", loaded_url)
    done = CliRunner().invoke(main, ["regions", "match", "Desa Pakan Sari",
                                     "--within", "32.01.01"])
    assert done.exit_code == 0, done.output
    lines = done.stdout.splitlines()
    assert lines[0].split("\t") == ["32.01.01.1007", "Pakansari", lines[0].split("\t")[2]]
    assert 1 <= len(lines) <= 5
    scores = [int(line.split("\t")[2]) for line in lines]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 100 for s in scores)
    done = CliRunner().invoke(main, ["regions", "match", "kab bogr", "--limit", "2"])
    assert done.stdout.splitlines()[0].startswith("32.01\tKabupaten Bogor\t")
    done = CliRunner().invoke(main, ["regions", "match", "x", "--within", "99"])
    assert done.exit_code == 1 and "unknown region code" in done.output


def test_cli_load_reports_counts_and_is_idempotent(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    upgrade(url)
    monkeypatch.setenv("DATABASE_URL", url)
    done = CliRunner().invoke(main, ["regions", "load"])
    assert done.exit_code == 0, done.output
    assert "desa 83762; inserted 91599" in done.output
    done = CliRunner().invoke(main, ["regions", "load"])
    assert "inserted 0, updated 0, deleted 0, unchanged 91599" in done.output


def test_cli_help():
    for args in (["regions"], ["regions", "load"], ["regions", "match"]):
        done = CliRunner().invoke(main, [*args, "--help"])
        assert done.exit_code == 0
    assert "CODE<TAB>OFFICIAL NAME<TAB>SCORE" in CliRunner().invoke(
        main, ["regions", "match", "--help"]).output
