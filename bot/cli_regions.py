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
    """Official regions (Kemendagri codes, idn-area-data, ODbL): load and match."""


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
