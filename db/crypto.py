"""Personal data encrypted at rest (issue 16, UU 27/2022 PDP).

NIK, name, birth date, phone and address are stored sealed with AES-256-GCM (the
`cryptography` package): `01 | key id (4 bytes) | nonce (12) | ciphertext + tag`, with the
column's purpose ("kpm.nik") as associated data, so a value copied into another column does
not decrypt. Lookups by NIK use a blind index: HMAC-SHA256 of the NIK under a key derived
from the same secret, 32 hex digits, never the clear value.

Keys come from `PROKUS_DATA_KEY` (base64url of 32 random bytes; `prokus keys generate`) or
the file named by `PROKUS_DATA_KEY_FILE` (one key per line). Several keys may be given,
comma-separated or one per line: the first encrypts, the others are still read — that is
how `prokus keys rotate` works without downtime. Without either, a local development key is
created in `data/dev-data-key` and a warning says so; `prokus run`/`serve`/`worker` refuse
to start against PostgreSQL without a configured key (`require_configured`).

The column types (`SealedText`, `SealedDate`, `SealedJSON`) encrypt on write and decrypt on
read, for the ORM and Core alike. A value that does not decrypt (corrupted, or sealed under
a key that is not configured) is logged and read as an `Unreadable*` marker, so one bad
record is reported and skipped (`is_unreadable`) while the others are served. Comparing a
sealed column in SQL raises TypeError: equal texts have different ciphertexts.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import LargeBinary, TypeDecorator
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BindParameter, ClauseElement

log = logging.getLogger(__name__)

VERSION = b"\x01"
HEADER = 1 + 4 + 12  # version, key id, nonce
TAG = 16
KEY_BYTES = 32
INDEX_HEX = 32  # 128 bits of HMAC-SHA256: no collisions among billions of NIKs
ENV_KEY = "PROKUS_DATA_KEY"
ENV_KEY_FILE = "PROKUS_DATA_KEY_FILE"
ENV_DEV_KEY_FILE = "PROKUS_DEV_KEY_FILE"
DEV_KEY_FILE = Path("data") / "dev-data-key"


class DataKeyError(RuntimeError):
    """The data key is missing, malformed or does not match the database."""


class UnreadableValue(ValueError):
    """A sealed value that does not decrypt: corrupted, or under an unknown key."""


def _derive(secret: bytes, label: bytes) -> bytes:
    return hmac.digest(secret, b"prokus/" + label, "sha256")


@dataclass(frozen=True)
class DataKey:
    key_id: bytes
    aead: AESGCM
    index_key: bytes

    @classmethod
    def from_secret(cls, secret: bytes) -> DataKey:
        if len(secret) != KEY_BYTES:
            raise DataKeyError(f"a data key must be {KEY_BYTES} bytes, got {len(secret)}")
        return cls(key_id=_derive(secret, b"key-id")[:4],
                   aead=AESGCM(_derive(secret, b"encryption/v1")),
                   index_key=_derive(secret, b"blind-index/v1"))

    @property
    def label(self) -> str:
        return self.key_id.hex()


class Keyring:
    """The configured keys: `current` seals, every key opens."""

    def __init__(self, secrets: list[bytes], source: str) -> None:
        if not secrets:
            raise DataKeyError("no data key given")
        self.keys = [DataKey.from_secret(s) for s in secrets]
        self.current = self.keys[0]
        self.by_id = {k.key_id: k for k in self.keys}
        self.source = source

    def seal(self, data: bytes, purpose: bytes) -> bytes:
        nonce = os.urandom(12)
        key = self.current
        return VERSION + key.key_id + nonce + key.aead.encrypt(nonce, data, purpose)

    def open(self, blob: bytes, purpose: bytes) -> bytes:
        if len(blob) < HEADER + TAG or blob[:1] != VERSION:
            raise UnreadableValue("not a sealed value")
        key = self.by_id.get(blob[1:5])
        if key is None:
            raise UnreadableValue(f"sealed under key {blob[1:5].hex()}, which is not configured")
        try:
            return key.aead.decrypt(blob[5:HEADER], blob[HEADER:], purpose)
        except InvalidTag:
            raise UnreadableValue("authentication failed (corrupted or wrong key)") from None

    def blind(self, value: str) -> str:
        """The blind index of `value` under the current key."""
        return hmac.digest(self.current.index_key, value.encode(), "sha256").hex()[:INDEX_HEX]

    def blinds(self, value: str) -> list[str]:
        """The blind index under every configured key, current first: lookups use all of
        them, so a row not yet re-keyed by `prokus keys rotate` is still found."""
        return [hmac.digest(k.index_key, value.encode(), "sha256").hex()[:INDEX_HEX]
                for k in self.keys]

    def digest(self, *values: object) -> str:
        """A keyed digest of several values (the registry import's "unchanged row" test)."""
        data = "\x1f".join("" if v is None else str(v) for v in values).encode()
        return hmac.digest(self.current.index_key, b"row\x1e" + data, "sha256").hex()[:INDEX_HEX]


def key_id_of(blob: bytes | None) -> str | None:
    """The hex id of the key a sealed value is under (None for NULL or junk)."""
    if not blob or len(blob) < HEADER or blob[:1] != VERSION:
        return None
    return bytes(blob[1:5]).hex()


def generate_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode().rstrip("=")


def parse_key(text: str) -> bytes:
    text = text.strip()
    try:
        if len(text) == 2 * KEY_BYTES and all(c in "0123456789abcdefABCDEF" for c in text):
            raw = bytes.fromhex(text)
        else:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        raise DataKeyError("a data key must be base64url or hex "
                           "(make one with `prokus keys generate`)") from None
    if len(raw) != KEY_BYTES:
        raise DataKeyError(f"a data key must be {KEY_BYTES} bytes, got {len(raw)} "
                           "(make one with `prokus keys generate`)")
    return raw


def _split(text: str) -> list[str]:
    items = []
    for line in text.replace(",", "\n").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            items.append(line)
    return items


def configured(environ: Mapping[str, str] | None = None) -> bool:
    """True when a key is configured (not the development fallback)."""
    environ = os.environ if environ is None else environ
    return bool(environ.get(ENV_KEY, "").strip() or environ.get(ENV_KEY_FILE, "").strip())


def dev_key_path(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    return Path(environ.get(ENV_DEV_KEY_FILE) or DEV_KEY_FILE)


def load(environ: Mapping[str, str] | None = None, allow_dev: bool = True) -> Keyring:
    """The keyring from the environment; the development key file when none is set."""
    environ = os.environ if environ is None else environ
    if environ.get(ENV_KEY, "").strip():
        return Keyring([parse_key(k) for k in _split(environ[ENV_KEY])], ENV_KEY)
    if environ.get(ENV_KEY_FILE, "").strip():
        path = Path(environ[ENV_KEY_FILE])
        try:
            text = path.read_text("utf-8")
        except OSError as error:
            raise DataKeyError(f"{ENV_KEY_FILE}={path}: {error.strerror}") from None
        return Keyring([parse_key(k) for k in _split(text)], str(path))
    if not allow_dev:
        raise DataKeyError(f"no data key: set {ENV_KEY} or {ENV_KEY_FILE} "
                           "(make one with `prokus keys generate`)")
    path = dev_key_path(environ)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(generate_key() + "\n")
        log.warning("created a local development data key in %s", path)
    log.warning("no %s set: personal data is encrypted with the local development key %s "
                "(never use it in production)", ENV_KEY, path)
    return Keyring([parse_key(k) for k in _split(path.read_text("utf-8"))], str(path))


_lock = threading.Lock()
_ring: Keyring | None = None


def keyring() -> Keyring:
    """The process's keyring, loaded from the environment on first use."""
    global _ring
    if _ring is None:
        with _lock:
            if _ring is None:
                _ring = load()
    return _ring


def use(ring: Keyring | None) -> None:
    """Replace the process's keyring (None: load it again from the environment)."""
    global _ring
    with _lock:
        _ring = ring


def require_configured(database_url: str, environ: Mapping[str, str] | None = None) -> None:
    """Refuse PostgreSQL (production) without a configured key; check the key's form."""
    if database_url.startswith(("postgresql", "postgres")) and not configured(environ):
        raise DataKeyError(f"{ENV_KEY} (or {ENV_KEY_FILE}) must be set to run against "
                           "PostgreSQL; make a key with `prokus keys generate` and keep it "
                           "in your secret store")
    if configured(environ):
        load(environ, allow_dev=False)


def blind(value: str) -> str:
    return keyring().blind(value)


def blinds(value: str) -> list[str]:
    return keyring().blinds(value)


# --- unreadable markers ----------------------------------------------------------------


class UnreadableText(str):
    """Read in place of a text that does not decrypt."""

    unreadable = True


class UnreadableDate(date):
    """Read in place of a date that does not decrypt (1900-01-01, flagged)."""

    unreadable = True


class UnreadableJSON(dict):
    """Read in place of a JSON document that does not decrypt (empty, flagged)."""

    unreadable = True


UNREADABLE_TEXT = UnreadableText("[data tidak terbaca]")
UNREADABLE_DATE = UnreadableDate(1900, 1, 1)


def is_unreadable(value: object) -> bool:
    return getattr(value, "unreadable", False) is True


def unreadable_fields(obj: object, names: list[str] | tuple[str, ...]) -> list[str]:
    return [n for n in names if is_unreadable(getattr(obj, n, None))]


def _report(purpose: str, error: UnreadableValue) -> None:
    log.error("unreadable sealed value in %s: %s (record skipped; `prokus keys check` lists "
              "the rows)", purpose, error)


# --- column types ------------------------------------------------------------------------


class _NoSqlComparison(TypeDecorator.Comparator):
    """A sealed column compared with a value (`== "3201…"`, `in_`, `startswith`) would
    silently never match (random nonces), so that is an error; IS NULL and comparisons
    between column objects (which SQLAlchemy makes internally) stay allowed."""

    def operate(self, op, *other, **kwargs):
        if op in (operators.is_, operators.is_not) or all(
                isinstance(o, ClauseElement) and not isinstance(o, BindParameter)
                for o in other):
            return super().operate(op, *other, **kwargs)
        raise TypeError(f"{self.type.purpose} is encrypted: look it up by its blind index "
                        "or filter in Python")

    def reverse_operate(self, op, other, **kwargs):
        if isinstance(other, ClauseElement) and not isinstance(other, BindParameter):
            return super().reverse_operate(op, other, **kwargs)
        raise TypeError(f"{self.type.purpose} is encrypted: look it up by its blind index "
                        "or filter in Python")


class _Sealed(TypeDecorator):
    impl = LargeBinary
    cache_ok = True
    comparator_factory = _NoSqlComparison

    def __init__(self, purpose: str) -> None:
        super().__init__()
        self.purpose = purpose
        self._aad = purpose.encode()

    def _dump(self, value: Any) -> bytes:
        raise NotImplementedError

    def _load(self, data: bytes) -> Any:
        raise NotImplementedError

    def _unreadable(self) -> Any:
        raise NotImplementedError

    def process_bind_param(self, value: Any, dialect) -> bytes | None:
        if value is None:
            return None
        if is_unreadable(value):
            raise UnreadableValue(f"refusing to store an unreadable {self.purpose} again")
        return keyring().seal(self._dump(value), self._aad)

    def process_result_value(self, value: Any, dialect) -> Any:
        if value is None:
            return None
        try:
            return self._load(keyring().open(bytes(value), self._aad))
        except UnreadableValue as error:
            _report(self.purpose, error)
            return self._unreadable()

    def process_literal_param(self, value, dialect):  # pragma: no cover - never inlined
        raise TypeError(f"{self.purpose} is encrypted and cannot be rendered as a literal")

    @property
    def python_type(self) -> type:
        return bytes


class SealedText(_Sealed):
    cache_ok = True

    def _dump(self, value: Any) -> bytes:
        return str(value).encode()

    def _load(self, data: bytes) -> str:
        return data.decode()

    def _unreadable(self) -> str:
        return UNREADABLE_TEXT


class SealedDate(_Sealed):
    cache_ok = True

    def _dump(self, value: Any) -> bytes:
        return value.isoformat().encode()

    def _load(self, data: bytes) -> date:
        return date.fromisoformat(data.decode())

    def _unreadable(self) -> date:
        return UNREADABLE_DATE


class SealedJSON(_Sealed):
    cache_ok = True

    def _dump(self, value: Any) -> bytes:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"),
                          default=str).encode()

    def _load(self, data: bytes) -> Any:
        return json.loads(data)

    def _unreadable(self) -> Any:
        return UnreadableJSON()


def sealed_columns(metadata) -> dict[str, list[tuple[str, _Sealed]]]:
    """{table: [(column, type)]} of every sealed column in `metadata`."""
    out: dict[str, list[tuple[str, _Sealed]]] = {}
    for table in metadata.sorted_tables:
        cols = [(c.name, c.type) for c in table.columns if isinstance(c.type, _Sealed)]
        if cols:
            out[table.name] = cols
    return out


def fingerprint_of(secret_text: str) -> str:
    """The key id of a key given as text (what `prokus keys status` prints)."""
    return DataKey.from_secret(parse_key(secret_text)).label
