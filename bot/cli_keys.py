"""`prokus keys`: the data key that seals personal data at rest (db.crypto, db.keys)."""

from __future__ import annotations

import sys

import click

from bot.cli_common import DatabaseGroup, pass_settings, sessions, status
from bot.settings import Settings


@click.group(cls=DatabaseGroup)
def keys() -> None:
    """The data key: generate one, see which keys seal the data, rotate, find bad rows.

    The key comes from PROKUS_DATA_KEY (or the file named by PROKUS_DATA_KEY_FILE). Several
    keys may be given, comma-separated: the first seals new data, all of them are read.

    \b
    Rotation without downtime:
      1. prokus keys generate                      -> NEW
      2. set PROKUS_DATA_KEY=NEW,OLD everywhere and restart the processes one by one
      3. prokus keys rotate                        (re-seals everything under NEW)
      4. set PROKUS_DATA_KEY=NEW and restart again
    """


@keys.command("generate")
def keys_generate() -> None:
    """Print a new random data key (keep it in a secret store, never in the repository)."""
    from db import crypto

    key = crypto.generate_key()
    click.echo(key)
    status(f"key id {crypto.fingerprint_of(key)}")


@keys.command("status")
@pass_settings
def keys_status(settings: Settings) -> None:
    """The configured keys and, per table, how many sealed values each key holds."""
    from db import crypto
    from db import keys as data_keys

    ring = crypto.keyring()
    click.echo(f"configured from {ring.source}: current {ring.current.label}"
               + (f", also readable {', '.join(k.label for k in ring.keys[1:])}"
                  if len(ring.keys) > 1 else ""))
    with sessions(settings) as factory, factory() as session:
        for table, counts in data_keys.usage(session).items():
            parts = ", ".join(f"{key} {n}" for key, n in sorted(counts.items())) or "empty"
            click.echo(f"{table}\t{parts}")


@keys.command("rotate")
@pass_settings
def keys_rotate(settings: Settings) -> None:
    """Re-seal every personal value under the current (first) key, with a progress bar.

    The service keeps running: each batch is its own transaction and lookups try every
    configured key meanwhile. Rows that do not decrypt are left alone and listed."""
    from db import crypto
    from db import keys as data_keys

    ring = crypto.keyring()
    with sessions(settings) as factory:
        with factory() as session:
            total = data_keys.total_rows(session)
        with click.progressbar(length=total, label=f"Re-sealing under {ring.current.label}",
                               file=sys.stderr) as bar:
            result = data_keys.rotate(factory, progress=bar.update)
    status(f"{result.rows} rows checked, {result.values} values re-sealed under "
           f"{ring.current.label}; retired keys: {', '.join(result.retired) or 'none'}")
    for table, pk, reason in result.unreadable or []:
        click.echo(f"unreadable\t{table}\t{pk}\t{reason}")
    if result.unreadable:
        raise click.ClickException(f"{len(result.unreadable)} row(s) could not be re-sealed "
                                   "(listed above); the old key is still needed for them")


@keys.command("check")
@pass_settings
def keys_check(settings: Settings) -> None:
    """List every sealed value that does not decrypt (TABLE, KEY, COLUMN, REASON; exit 1)."""
    from db import keys as data_keys

    with sessions(settings) as factory:
        with factory() as session:
            total = data_keys.total_rows(session)
        with click.progressbar(length=total, label="Checking sealed values",
                               file=sys.stderr) as bar:
            bad = data_keys.scan(factory, progress=bar.update)
    for table, pk, column, reason in bad:
        click.echo(f"{table}\t{pk}\t{column}\t{reason}")
    if bad:
        raise click.ClickException(f"{len(bad)} sealed value(s) do not decrypt")
    status("every sealed value decrypts")
