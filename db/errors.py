"""Which database errors are worth retrying: a lost connection, a server that is starting or
stopping, a deadlock or serialization failure, SQLite busy. Integrity, programming and data
errors will fail the same way again and are not retried."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

# PostgreSQL SQLSTATE classes/codes that a retry can cure.
_TRANSIENT_SQLSTATES = ("08", "53", "57P", "40001", "40P01", "55P03")


def is_transient(exc: BaseException) -> bool:
    """True when retrying the same transaction later may succeed."""
    if isinstance(exc, (DisconnectionError, PoolTimeout)):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate:
        return sqlstate.startswith(_TRANSIENT_SQLSTATES)
    # SQLite ("database is locked") and drivers without a SQLSTATE: operational errors are
    # about the connection or the lock, not about the statement.
    return isinstance(exc, OperationalError)
