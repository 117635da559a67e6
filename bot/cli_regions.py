"""`prokus regions`: load the official regions and match typed names to their codes."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from bot.cli_common import DatabaseGroup, pass_settings, sessions
from bot.cli_common import status as _status
from bot.settings import Settings

LEVEL_CHOICE = click.Choice(["province", "kabupaten", "kecamatan", "desa"])


@click.group(cls=DatabaseGroup)
def regions() -> None:
    """Official regions (Kemendagri codes, idn-area-data, ODbL): load, match, and match the
    addresses of registrations (match-registrations, unmatched)."""


@regions.command("load")
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None,
              help="Folder with provinces/regencies/districts/villages.csv "
                   "(default: the copy shipped in db/regions_data/).")
@pass_settings
def regions_load(settings: Settings, data_dir: Path | None) -> None:
    """Load (or update) the `regions` table from the shipped CSVs, in one transaction.

    Idempotent: new codes are inserted, changed ones updated, vanished ones deleted, and a
    second run changes nothing. Nothing is downloaded. Run after `prokus db upgrade`."""
    from db.regions import DATA_DIR, load, total_rows

    data_dir = data_dir or DATA_DIR
    started = time.perf_counter()
    with sessions(settings) as make_session, make_session.begin() as session, \
            click.progressbar(length=total_rows(data_dir), label="Loading regions",
                              file=sys.stderr) as bar:
        result = load(session, data_dir, bar.update)
    counts = ", ".join(f"{level} {n}" for level, n in result.counts.items())
    _status(f"Regions: {counts}; inserted {result.inserted}, updated {result.updated}, "
            f"deleted {result.deleted}, unchanged {result.unchanged} "
            f"({time.perf_counter() - started:.1f} s).")
    from db.region_matching import pending_ids

    with sessions(settings) as make_session, make_session() as session:
        pending = len(pending_ids(session))
    if pending:
        _status(f"{pending} registration(s) have no region codes yet: run "
                "`prokus regions match-registrations`.")


@regions.command("match")
@click.argument("text")
@click.option("--within", "within", metavar="CODE", default=None,
              help="Only regions under this code (dotted 32.01.01 or digits 320101); "
                   "never a candidate elsewhere.")
@click.option("--level", type=LEVEL_CHOICE, default=None,
              help="The level sought (default: from the text's 'kab.'/'kec.'/'desa', else "
                   "the level just under --within, else any).")
@click.option("--limit", type=click.IntRange(1, 50), default=5, show_default=True)
@pass_settings
def regions_match(settings: Settings, text: str, within: str | None, level: str | None,
                  limit: int) -> None:
    """Print the regions TEXT most likely names, best first, one per line:
    CODE<TAB>OFFICIAL NAME<TAB>SCORE (0-100). Nothing printed: nothing close enough."""
    from db.regions import RegionsNotLoaded, match

    with sessions(settings) as make_session, make_session() as session:
        try:
            found = match(session, text, within=within, level=level, limit=limit)
        except (RegionsNotLoaded, ValueError) as exc:
            raise click.ClickException(str(exc)) from exc
    for candidate in found:
        click.echo(f"{candidate.code}\t{candidate.name}\t{candidate.score:.0f}")


@regions.command("match-registrations")
@pass_settings
def regions_match_registrations(settings: Settings) -> None:
    """Match the typed addresses of registrations that have no region codes yet.

    For each registration without `wilayah_status` (stored before the regions table, or
    while it was empty): the kabupaten/kota is matched within the NIK's province (else
    across the country), the kecamatan within that kabupaten, the desa within that
    kecamatan. Only clear matches are taken (see db/region_matching.py); they store the
    codes, the official names and `kode_wilayah` (the most precise code), and
    `wilayah_status` "cocok" when all three matched. Idempotent: run it again after
    `prokus regions load` (not run by the load itself, which says how many registrations
    wait for it). Commits every 200
    registrations. What stays unmatched is listed by `prokus regions unmatched`."""
    from db.region_matching import match_registrations, pending_ids
    from db.regions import loaded

    started = time.perf_counter()
    with sessions(settings) as make_session:
        with make_session() as session:
            if not loaded(session):
                raise click.ClickException(
                    "The regions table is empty: run `prokus regions load` first.")
            ids = pending_ids(session)
        total = {"matched": 0, "partly": 0, "unmatched": 0}
        with click.progressbar(length=len(ids), label="Matching registrations",
                               file=sys.stderr) as bar:
            for start in range(0, len(ids), 200):
                with make_session.begin() as session:
                    counts = match_registrations(session, ids[start:start + 200], bar.update)
                for key in total:
                    total[key] += getattr(counts, key)
    _status(f"Registrations: {len(ids)} without codes; matched {total['matched']}, "
            f"partly {total['partly']} (kabupaten/kecamatan only), unmatched "
            f"{total['unmatched']} ({time.perf_counter() - started:.1f} s). "
            "List the rest with `prokus regions unmatched`.")


@regions.command("unmatched")
@pass_settings
def regions_unmatched(settings: Settings) -> None:
    """List registrations whose address is not fully matched to official regions, oldest
    first, one per line, tab-separated:

    NUMBER<TAB>KABUPATEN<TAB>KECAMATAN<TAB>DESA<TAB>CODE<TAB>WHY

    KABUPATEN/KECAMATAN/DESA as stored (official names where a level matched, else what
    was typed); CODE the most precise code that matched (dotted) or "-"; WHY is
    "tidak_ada" (the applicant chose "Tidak ada di daftar": for the verifier) or
    "no_clear_match" (run `prokus regions match-registrations`, or correct by hand).
    No NIK or other personal data besides the address is printed."""
    from db.region_matching import unmatched

    with sessions(settings) as make_session, make_session() as session:
        rows = unmatched(session)
    for row in rows:
        fields = [row.number, row.kabupaten, row.kecamatan, row.desa, row.code or "-", row.why]
        click.echo("\t".join(" ".join(str(f).split()) for f in fields))
    _status(f"{len(rows)} registration(s) not fully matched.")
