"""Operator accounts and console sessions: the functions `prokus operators` and the web console
both call, each taking the caller's session.

Rules in one place:
- usernames are 3-32 characters of a-z, 0-9, `.`, `_`, `-` (stored in lower case, so `Budi`
  and `budi` are one account);
- passwords are 10-256 characters and stored only as an argon2id hash;
- 5 wrong passwords in a row lock the account for 15 minutes; while locked even the right
  password is refused (the caller shows the same message as for a wrong one);
- a session cookie holds a random token; the table keeps only its SHA-256, so a copy of the
  database does not let anyone sign in.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from db import regions as region_table
from db.models import Operator, OperatorSession
from domain import regions

ROLES = ("verifier", "coordinator", "supervisor")
MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
PASSWORD_MIN, PASSWORD_MAX = 10, 256
USERNAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{2,31}")
# last_seen_at is written at most this often, so a busy page does not write on every request.
TOUCH_EVERY = timedelta(seconds=60)

# Replaced by tests with a cheaper one; the production parameters are argon2-cffi's defaults
# (RFC 9106 low-memory profile: argon2id, 64 MiB, t=3, p=4).
hasher = PasswordHasher()
_dummy_hashes: dict[int, str] = {}


class OperatorError(ValueError):
    """A rule was broken; `code` is stable (the console translates it), the text is English."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------- rules
def normalise_username(text: str) -> str:
    return text.strip().lower()


def check_username(text: str) -> str:
    """The stored form of a username, or OperatorError."""
    username = normalise_username(text)
    if not USERNAME_RE.fullmatch(username):
        raise OperatorError("username_invalid", "a username is 3-32 characters: letters a-z, "
                            "digits, '.', '_' or '-', starting with a letter or digit")
    return username


def check_role(role: str) -> str:
    role = role.strip().lower()
    if role not in ROLES:
        raise OperatorError("role_invalid", f"the role must be one of {', '.join(ROLES)}")
    return role


def check_region(region: str | None) -> str | None:
    """A kode wilayah such as 32.01 stored as digits (3201), or None for no region (its
    shape only; `add_operator` also checks it against the regions table once loaded)."""
    if region is None or not region.strip():
        return None
    region = region.strip()
    if not regions.valid_region(region):
        raise OperatorError("region_invalid", "a region is a kode wilayah of 2-10 digits with "
                            "a known province, e.g. 32 or 32.01 or 32.01.05")
    return region.replace(".", "")


def check_known_region(session: Session, region: str | None) -> str | None:
    """`check_region`, and once `prokus regions load` has filled the regions table, the code
    must be one of its regions (OperatorError region_invalid otherwise)."""
    code = check_region(region)
    if code is not None:
        try:
            region_table.check_code(session, code)
        except region_table.UnknownRegion as exc:
            raise OperatorError("region_invalid", f"{exc}: not in the regions table "
                                "(see `prokus regions match`)") from None
    return code


def check_password(password: str) -> str:
    if len(password) < PASSWORD_MIN:
        raise OperatorError("password_short",
                            f"the password must have at least {PASSWORD_MIN} characters")
    if len(password) > PASSWORD_MAX:
        raise OperatorError("password_long",
                            f"the password may have at most {PASSWORD_MAX} characters")
    return password


def dotted_region(code: str | None) -> str | None:
    """3201052001 -> 32.01.05.2001 (the Kemendagri way of writing it)."""
    if not code:
        return None
    parts = [code[0:2], code[2:4], code[4:6], code[6:10]]
    return ".".join(part for part in parts if part)


def hash_password(password: str) -> str:
    return hasher.hash(password)


def _password_matches(stored: str, password: str) -> bool:
    try:
        return hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def _spend_a_verification(password: str) -> None:
    """Take as long as a real check, so timing does not tell which usernames exist."""
    key = id(hasher)
    if key not in _dummy_hashes:
        _dummy_hashes[key] = hasher.hash(secrets.token_urlsafe(16))
    _password_matches(_dummy_hashes[key], password)


# ---------------------------------------------------------------------- accounts
def get_operator(session: Session, username: str) -> Operator | None:
    stmt = select(Operator).where(Operator.username == normalise_username(username))
    return session.scalars(stmt).one_or_none()


def list_operators(session: Session) -> list[Operator]:
    return list(session.scalars(select(Operator).order_by(Operator.username)))


def add_operator(session: Session, username: str, role: str, password: str,
                 region: str | None = None, *, now: datetime) -> Operator:
    """Create an account; OperatorError for a rule broken or a username already taken."""
    username = check_username(username)
    role = check_role(role)
    code = check_known_region(session, region)
    check_password(password)
    if get_operator(session, username) is not None:
        raise OperatorError("username_taken", f"the username {username!r} is already taken")
    operator = Operator(username=username, role=role, kode_wilayah=code,
                        password_hash=hash_password(password), is_active=True,
                        failed_logins=0, created_at=now)
    session.add(operator)
    session.flush()
    return operator


def disable_operator(session: Session, username: str) -> Operator:
    """Switch an account off and end its sessions at once."""
    operator = get_operator(session, username)
    if operator is None:
        raise OperatorError("not_found", f"no operator named {normalise_username(username)!r}")
    if not operator.is_active:
        raise OperatorError("already_disabled", f"{operator.username!r} is already disabled")
    operator.is_active = False
    session.execute(delete(OperatorSession).where(OperatorSession.operator_id == operator.id))
    return operator


def set_password(session: Session, username: str, password: str) -> Operator:
    """Give an account a new password and clear its lockout."""
    operator = get_operator(session, username)
    if operator is None:
        raise OperatorError("not_found", f"no operator named {normalise_username(username)!r}")
    operator.password_hash = hash_password(check_password(password))
    operator.failed_logins, operator.locked_until = 0, None
    return operator


# ---------------------------------------------------------------------- login
@dataclass(frozen=True)
class LoginResult:
    """outcome: ok | wrong_password | locked | unknown | disabled. `locked_now` is True for
    the wrong password that locked the account (audit it once)."""

    outcome: str
    operator: Operator | None = None
    locked_now: bool = False

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


def authenticate(session: Session, username: str, password: str, *, now: datetime
                 ) -> LoginResult:
    """Check a login attempt and count it; the caller commits and audits."""
    name = normalise_username(username)
    operator = get_operator(session, name) if USERNAME_RE.fullmatch(name) else None
    if operator is None or not operator.is_active:
        _spend_a_verification(password)
        return LoginResult("unknown" if operator is None else "disabled", operator)
    if operator.locked_until is not None:
        if operator.locked_until > now:
            _spend_a_verification(password)
            return LoginResult("locked", operator)
        operator.locked_until, operator.failed_logins = None, 0  # the lock has run out
    if _password_matches(operator.password_hash, password):
        operator.failed_logins, operator.last_login_at = 0, now
        if hasher.check_needs_rehash(operator.password_hash):
            operator.password_hash = hasher.hash(password)
        return LoginResult("ok", operator)
    session.flush()
    count = session.execute(
        update(Operator).where(Operator.id == operator.id)
        .values(failed_logins=Operator.failed_logins + 1).returning(Operator.failed_logins)
    ).scalar_one()  # atomic: two wrong attempts at once count as two
    if count >= MAX_FAILED_LOGINS:
        operator.locked_until = now + LOCKOUT
    return LoginResult("wrong_password", operator, locked_now=count == MAX_FAILED_LOGINS)


# ---------------------------------------------------------------------- sessions
def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def start_session(session: Session, operator: Operator, *, now: datetime, lifetime: timedelta,
                  idle: timedelta) -> str:
    """A new session for `operator`; returns the token for the cookie (never stored).
    Sessions that have run out (anyone's) are removed on the way."""
    session.execute(delete(OperatorSession).where(or_(
        OperatorSession.expires_at <= now, OperatorSession.last_seen_at <= now - idle)))
    token = secrets.token_urlsafe(32)
    session.add(OperatorSession(token_hash=hash_token(token), operator_id=operator.id,
                                created_at=now, last_seen_at=now, expires_at=now + lifetime))
    return token


@dataclass(frozen=True)
class SessionLookup:
    """state: valid | expired (idle too long, past its lifetime, or account disabled) |
    unknown."""

    state: str
    session: OperatorSession | None = None
    operator: Operator | None = None


def find_session(session: Session, token: str, *, now: datetime, idle: timedelta
                 ) -> SessionLookup:
    """Look a cookie's token up; a valid session's last_seen_at moves on (at most once a
    minute), an expired one is deleted. The caller commits."""
    row = session.execute(
        select(OperatorSession, Operator).join(Operator,
                                               Operator.id == OperatorSession.operator_id)
        .where(OperatorSession.token_hash == hash_token(token))
    ).one_or_none()
    if row is None:
        return SessionLookup("unknown")
    found, operator = row
    if (not operator.is_active or found.expires_at <= now
            or found.last_seen_at + idle <= now):
        session.delete(found)
        return SessionLookup("expired", None, operator)
    if now - found.last_seen_at >= TOUCH_EVERY:
        found.last_seen_at = now
    return SessionLookup("valid", found, operator)


def end_session(session: Session, session_id: int) -> None:
    session.execute(delete(OperatorSession).where(OperatorSession.id == session_id))


def push_flash(session: Session, session_id: int, level: str, text: str) -> None:
    """Keep a message for the next page this session shows."""
    found = session.get(OperatorSession, session_id)
    if found is not None:
        found.flash = [*(found.flash or []), [level, text]]


def take_flash(session: Session, session_id: int) -> list[Any]:
    """The messages kept for this session, removed from it."""
    found = session.get(OperatorSession, session_id)
    if found is None or not found.flash:
        return []
    messages, found.flash = list(found.flash), None
    return messages
