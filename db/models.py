"""Typed ORM models (SQLAlchemy 2 `Mapped[...]`)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    LargeBinary,
    SmallInteger,
    String,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy import false as sa_false
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, validates

from db.crypto import SealedDate, SealedJSON, SealedText, blind

JSONType = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator):
    """Timestamps stored in UTC and always read back as aware UTC datetimes, on SQLite
    (which keeps no zone) as on PostgreSQL, so no caller has to guess."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            return value.astimezone(UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class User(Base):
    """Someone who talks to the assistant on one channel."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("channel", "external_id", name="uq_users_channel_external"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16), default="kpm")
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # 0015: when this account last agreed to the use of its data, and for which form
    # ("eligibility", "registration"), shown by /data_saya (actions.privacy).
    consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    consent_for: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # 0015: after /hapus_data, the audit rows of its last day keep this account as actor
    # for a day (rate limits, the same-NIK check) and then get `erase_pseudonym`
    # (db.privacy, db.retention); both are cleared then.
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    erase_pseudonym: Mapped[str | None] = mapped_column(String(32), nullable=True)


class Conversation(Base):
    """A user's dialogue state (active form, offered buttons, ...), one row per user; sealed
    (db.crypto): a running form holds a NIK, a name, a phone number."""

    __tablename__ = "conversations"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[dict[str, Any]] = mapped_column(SealedJSON("conversations.state"),
                                                  default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Kpm(Base):
    """A PKH beneficiary (keluarga penerima manfaat) from the Kemensos registry. NIK, name,
    birth date and phone are sealed (db.crypto); the key is `nik_hash`, the NIK's blind
    index, set whenever `nik` is; `digest` (keyed) tells the import an unchanged row."""

    __tablename__ = "kpm"
    __table_args__ = (Index("ix_kpm_kode_wilayah", "kode_wilayah"),)

    nik_hash: Mapped[str] = mapped_column(String(32), primary_key=True)
    nik: Mapped[str] = mapped_column(SealedText("kpm.nik"))
    nama: Mapped[str] = mapped_column(SealedText("kpm.nama"))
    tanggal_lahir: Mapped[date] = mapped_column(SealedDate("kpm.tanggal_lahir"))
    jenis_kelamin: Mapped[str] = mapped_column(String(1))
    kode_wilayah: Mapped[str] = mapped_column(String(10))
    status_pkh: Mapped[str] = mapped_column(String(10))
    tanggal_graduasi: Mapped[date | None] = mapped_column(Date, nullable=True)
    no_hp: Mapped[str | None] = mapped_column(SealedText("kpm.no_hp"), nullable=True)
    digest: Mapped[str | None] = mapped_column(String(32), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    @validates("nik")
    def _index_nik(self, _key: str, value: str) -> str:
        self.nik_hash = blind(value)
        return value


class AuditLog(Base):
    """Who did what, when, to whom (masked): NIK lookups, operator actions."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_actor_action_at", "actor", "action", "at"),
                      Index("ix_audit_action_at", "action", "at"),
                      Index("ix_audit_at_id", "at", "id"),
                      Index("ix_audit_subject", "subject"))

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str | None] = mapped_column(String(64), nullable=True)
    outcome: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)

    @validates("subject", "detail")
    def _masked(self, _key: str, value: Any) -> Any:
        """Whatever a caller passes, NIKs, phone numbers and bot tokens are stored masked
        (issue 16: the audit log is kept 5 years, so it holds no clear personal number)."""
        from db.privacy import masked

        return masked(value)


class Registration(Base):
    """A Prokus registration submitted through the assistant.

    One active registration per NIK: a partial unique index ignores rejected ones, so a
    rejected applicant may register again.
    """

    __tablename__ = "registrations"
    __table_args__ = (
        Index("uq_registrations_active_nik", "nik_hash", unique=True,
              sqlite_where=text("status NOT IN ('ditolak', 'ditarik')"),
              postgresql_where=text("status NOT IN ('ditolak', 'ditarik')")),
        Index("ix_registrations_user", "user_id"),
        Index("ix_registrations_status", "status"),
        Index("ix_registrations_wilayah", "kode_wilayah"),
        Index("ix_registrations_created_at", "created_at"),
        Index("ix_registrations_status_created", "status", "created_at"),
        Index("ix_registrations_bidang", "bidang_usaha"),
        # 0009: a region's queue and counts per status without heap visits, and the exact
        # NIK search (uq_registrations_active_nik is partial: it leaves out "ditolak").
        Index("ix_registrations_wilayah_status", "kode_wilayah", "status", "created_at"),
        Index("ix_registrations_nik", "nik_hash"),
        # 0013: what `prokus regions match-registrations` and `unmatched` work on.
        Index("ix_registrations_region_match", "wilayah_status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(16), unique=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"),
                                                nullable=True)
    # Personal data sealed (db.crypto); `nik_hash` is the NIK's blind index, set with `nik`.
    nik_hash: Mapped[str] = mapped_column(String(32))
    nik: Mapped[str] = mapped_column(SealedText("registrations.nik"))
    nama: Mapped[str] = mapped_column(SealedText("registrations.nama"))
    tanggal_lahir: Mapped[date] = mapped_column(SealedDate("registrations.tanggal_lahir"))
    no_hp: Mapped[str] = mapped_column(SealedText("registrations.no_hp"))
    kabupaten: Mapped[str] = mapped_column(SealedText("registrations.kabupaten"))
    kecamatan: Mapped[str] = mapped_column(SealedText("registrations.kecamatan"))
    desa: Mapped[str] = mapped_column(SealedText("registrations.desa"))
    bidang_usaha: Mapped[str] = mapped_column(String(32))
    deskripsi_usaha: Mapped[str] = mapped_column(String(300))
    lama_usaha_bulan: Mapped[int]
    status: Mapped[str] = mapped_column(String(16), default="diajukan")
    alasan: Mapped[str | None] = mapped_column(String(300), nullable=True)
    # Kemendagri region code, digits only: the NIK's first six (province, kabupaten,
    # kecamatan) until typed addresses are matched to official codes (issue 15).
    kode_wilayah: Mapped[str | None] = mapped_column(String(10), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # 0013: the address as official regions (dotted codes; None when not matched).
    # `kabupaten`/`kecamatan`/`desa` hold the official names of what matched, the typed
    # text otherwise; `kode_wilayah` the digits of the most precise matched code.
    kode_kabupaten: Mapped[str | None] = mapped_column(String(13), nullable=True)
    kode_kecamatan: Mapped[str | None] = mapped_column(String(13), nullable=True)
    kode_desa: Mapped[str | None] = mapped_column(String(13), nullable=True)
    # "cocok": all three matched; "tidak_ada": the applicant chose "Tidak ada di daftar"
    # at some level (for the verifier); None: not (yet) matched.
    wilayah_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # 0014: the registry has a phone for this NIK (or the NIK was tried from many accounts)
    # and the applicant's shared Telegram contact did not match it, or was not shared:
    # nothing from the registry was shown; the verifier checks who this is.
    kontak_berbeda: Mapped[bool] = mapped_column(default=False, server_default=sa_false())

    @validates("nik")
    def _index_nik(self, _key: str, value: str) -> str:
        self.nik_hash = blind(value)
        return value


class RegistrationCounter(Base):
    """The last registration number given out per year; its row is the submission lock."""

    __tablename__ = "registration_counters"

    year: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(default=0)


class OutboxMessage(Base):
    """A proactive message (status notice, reminder, broadcast): the text, once."""

    __tablename__ = "outbox_messages"
    __table_args__ = (Index("ix_outbox_messages_kind_id", "kind", "id"),
                      Index("ix_outbox_messages_created", "created_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    # Sealed (db.crypto): a status notice or a handoff reply may name the person.
    text: Mapped[str] = mapped_column(SealedText("outbox_messages.text"))
    reference: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Who gets the delivery report when every recipient has a final state (a mentor's
    # /kirim), and when it was queued.
    report_to: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"),
                                                  nullable=True)
    reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Buttons of a reply, channel-neutral (see db.outbox.markup_of); None for plain text.
    markup: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    # A paid broadcast (Telegram's allow_paid_broadcast) and its target rate, messages/s.
    paid: Mapped[bool] = mapped_column(default=False, server_default="0")
    paid_rate: Mapped[float | None] = mapped_column(nullable=True)
    # 0015: when retention replaced `text` by db.retention.PURGED_TEXT (30 days after the
    # last delivery, every recipient final); the delivery records in `outbox` stay.
    text_purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class OutboxItem(Base):
    """One message to one recipient: unique per (message, recipient), so it is sent once.

    state: pending -> sending -> sent | failed | blocked | uncertain (or cancelled).
    """

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("message_id", "user_id", name="uq_outbox_message_user"),
        Index("ix_outbox_state_due", "state", "due_at"),
        Index("ix_outbox_user_attempted", "user_id", "attempted_at"),
        Index("ix_outbox_message_state", "message_id", "state"),
        Index("ix_outbox_claim", "state", "priority", "due_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("outbox_messages.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    due_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(String(200), nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Not sent at or after this moment (a reminder after its session began).
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    attempted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(),
                                                          nullable=True)
    # 0: a reply to someone who just wrote; 1: notices, reminders, reports; 2: broadcasts.
    priority: Mapped[int] = mapped_column(SmallInteger, default=1, server_default="1")
    # 0017: the correlation id of the turn that wrote the row (its log line, its NLU call's
    # X-Request-ID); null for reminders and broadcasts made outside a turn.
    correlation_id: Mapped[str | None] = mapped_column(String(32), nullable=True)


class OutboxWorker(Base):
    """A running outbox worker and its heartbeat; rows claimed by a worker whose heartbeat
    stopped are recovered by the others."""

    __tablename__ = "outbox_workers"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class OutboxPacer(Base):
    """The global send rate, shared by all workers: each worker reserves send slots by
    moving `next_at` (seconds since the epoch) forward under the row's lock."""

    __tablename__ = "outbox_pacer"

    name: Mapped[str] = mapped_column(String(16), primary_key=True)
    next_at: Mapped[float] = mapped_column(default=0.0)
    # Adaptive paid rate: the share of a paid broadcast's target rate allowed now (a 429
    # halves it, then it climbs back), and when it was last cut (seconds since the epoch).
    scale: Mapped[float] = mapped_column(default=1.0, server_default="1")
    scaled_at: Mapped[float] = mapped_column(default=0.0, server_default="0")


class Mentor(Base):
    """A pendamping: a Telegram account with the mentor role, and a region."""

    __tablename__ = "mentors"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    nama: Mapped[str] = mapped_column(SealedText("mentors.nama"))
    no_hp: Mapped[str] = mapped_column(SealedText("mentors.no_hp"))
    kode_wilayah: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Assignment(Base):
    """Which mentor accompanies a registration (one mentor per registration)."""

    __tablename__ = "mentor_assignments"

    registration_id: Mapped[int] = mapped_column(
        ForeignKey("registrations.id", ondelete="CASCADE"), primary_key=True)
    mentor_id: Mapped[int] = mapped_column(ForeignKey("mentors.id", ondelete="CASCADE"),
                                           index=True)
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class MentoringSession(Base):
    """A mentoring session for all of a mentor's mentees."""

    __tablename__ = "mentoring_sessions"
    __table_args__ = (Index("ix_sessions_mentor_start", "mentor_id", "starts_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mentor_id: Mapped[int] = mapped_column(ForeignKey("mentors.id", ondelete="CASCADE"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    tempat: Mapped[str] = mapped_column(String(120))
    topik: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="terjadwal")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class InboxUpdate(Base):
    """An incoming update, stored before it is confirmed to the channel; `processed_at` is
    set in the same transaction as the turn it caused, so it is handled exactly once."""

    __tablename__ = "inbox"
    __table_args__ = (
        Index("ix_inbox_pending", "processed_at", "update_id"),
        Index("ix_inbox_user_pending", "user_key", "processed_at", "update_id"),
    )

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    user_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The raw update (the message text may hold a NIK): sealed (db.crypto).
    payload: Mapped[dict[str, Any] | None] = mapped_column(SealedJSON("inbox.payload"),
                                                            nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Operator(Base):
    """A person who works in the web console: a verifier (optionally scoped to a region), a
    coordinator or a supervisor. Usernames are stored in lower case; the password only as an
    argon2 hash. `failed_logins` counts wrong passwords in a row; reaching the limit sets
    `locked_until`."""

    __tablename__ = "operators"
    __table_args__ = (
        UniqueConstraint("username", name="uq_operators_username"),
        CheckConstraint("role IN ('verifier', 'coordinator', 'supervisor')",
                        name="ck_operators_role"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    kode_wilayah: Mapped[str | None] = mapped_column(String(10), nullable=True)
    is_active: Mapped[bool] = mapped_column(default=True)
    failed_logins: Mapped[int] = mapped_column(default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class OperatorSession(Base):
    """A signed-in browser: the cookie holds a random token, the table only its SHA-256.
    Valid until `expires_at` and while `last_seen_at` is within the idle timeout; `flash`
    holds messages to show on the next page."""

    __tablename__ = "operator_sessions"
    __table_args__ = (UniqueConstraint("token_hash", name="uq_operator_sessions_token_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id", ondelete="CASCADE"),
                                             index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    flash: Mapped[list[Any] | None] = mapped_column(JSONType, nullable=True)


class KpmImportJob(Base):
    """A KPM registry file uploaded in the console and imported in the background: the
    page polls `done_bytes` / `total_bytes` and the counts; rejected rows go to
    `rejects_path` (a CSV the operator can download)."""

    __tablename__ = "kpm_import_jobs"
    __table_args__ = (CheckConstraint("status IN ('queued', 'running', 'done', 'failed')",
                                      name="ck_kpm_import_jobs_status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    operator: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    total_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    done_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    rows_imported: Mapped[int] = mapped_column(default=0, server_default="0")
    rows_rejected: Mapped[int] = mapped_column(default=0, server_default="0")
    rejects_path: Mapped[str | None] = mapped_column(String(500), nullable=True)
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class HandoffTicket(Base):
    """A conversation handed to a person (issue 14). `confirming`: the user was offered a
    handoff and has not yet written their question; `waiting`: no operator has taken it;
    `assigned`: an operator (`assigned_to`, a console username) has it; `closed` with an
    `outcome`. At most one ticket that is not closed per user (a partial unique index)."""

    __tablename__ = "handoff_tickets"
    __table_args__ = (
        CheckConstraint("status IN ('confirming', 'waiting', 'assigned', 'closed')",
                        name="ck_handoff_tickets_status"),
        Index("ix_handoff_tickets_status_created", "status", "created_at"),
        Index("ix_handoff_tickets_user", "user_id", "status"),
        Index("uq_handoff_tickets_open_user", "user_id", unique=True,
              sqlite_where=text("status != 'closed'"),
              postgresql_where=text("status != 'closed'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))
    kode_wilayah: Mapped[str | None] = mapped_column(String(10), nullable=True)
    topic: Mapped[str | None] = mapped_column(String(32), nullable=True)
    assigned_to: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    first_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_user_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_operator_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    closed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)


class HandoffMessage(Base):
    """One message of a handoff: from the user (text stored with NIK and phone masked), an
    operator (`author`; `outbox_message_id` gives its delivery state) or the system.
    `kind` is "text", or what was sent instead ("photo", "sticker", ...)."""

    __tablename__ = "handoff_messages"
    __table_args__ = (
        CheckConstraint("sender IN ('user', 'operator', 'system')",
                        name="ck_handoff_messages_sender"),
        Index("ix_handoff_messages_ticket", "ticket_id", "id"),
        Index("ix_handoff_messages_created", "created_at"),  # 0015: retention
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("handoff_tickets.id", ondelete="CASCADE"))
    sender: Mapped[str] = mapped_column(String(16))
    author: Mapped[str | None] = mapped_column(String(64), nullable=True)
    kind: Mapped[str] = mapped_column(String(16), default="text", server_default="text")
    text: Mapped[str] = mapped_column(SealedText("handoff_messages.text"))
    outbox_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("outbox_messages.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class NluMiss(Base):
    """A message the bot did not understand (`reason` "fallback") or answered with low
    confidence ("low_confidence"), stored with NIK-like and phone numbers masked, with the
    model's ranking; operators label it (`label`: an intent, a faq/* key or out_of_scope)
    or discard it."""

    __tablename__ = "nlu_misses"
    __table_args__ = (
        CheckConstraint("status IN ('new', 'labelled', 'discarded')", name="ck_nlu_misses_status"),
        Index("ix_nlu_misses_status_created", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(String(4096))
    intent: Mapped[str | None] = mapped_column(String(64), nullable=True)
    confidence: Mapped[float | None] = mapped_column(nullable=True)
    ranking: Mapped[list[Any] | None] = mapped_column(JSONType, nullable=True)
    reason: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="new", server_default="new")
    label: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reviewed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Region(Base):
    """An official administrative region (Kemendagri code, idn-area-data; ODbL 1.0): `code`
    dotted ("32.01.01.1007"), `digits` the same without dots (NIK prefixes, `kode_wilayah`),
    `level` province | kabupaten | kecamatan | desa, `kind` kabupaten/kota or desa/kelurahan
    (from the name and the code), `name` official, `name_norm` lower case without the
    "Kabupaten"/"Kota" prefix or punctuation (db/regions.normalise). Filled by
    `prokus regions load`."""

    __tablename__ = "regions"
    __table_args__ = (
        CheckConstraint("level IN ('province', 'kabupaten', 'kecamatan', 'desa')",
                        name="ck_regions_level"),
        Index("ix_regions_parent", "parent_code"),
        Index("ix_regions_level", "level"),
        Index("ix_regions_name_norm", "name_norm"),
        Index("uq_regions_digits", "digits", unique=True),
    )

    code: Mapped[str] = mapped_column(String(13), primary_key=True)
    parent_code: Mapped[str | None] = mapped_column(String(13), nullable=True)
    level: Mapped[str] = mapped_column(String(10))
    kind: Mapped[str | None] = mapped_column(String(10), nullable=True)
    name: Mapped[str] = mapped_column(String(100))
    name_norm: Mapped[str] = mapped_column(String(100))
    digits: Mapped[str] = mapped_column(String(10))
    # WIB | WITA | WIT on provinces (None below them): filled by the loader from
    # domain.regions.zone_name, the one source of the mapping (migration 0012).
    zone: Mapped[str | None] = mapped_column(String(4), nullable=True)


class NikAttempt(Base):
    """A NIK looked up from an account (by its blind index), kept a day: a NIK tried from
    several accounts in a day is flagged and then only looked up with a matching contact."""

    __tablename__ = "nik_attempts"
    __table_args__ = (Index("ix_nik_attempts_hash_at", "nik_hash", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    nik_hash: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DataKeyRecord(Base):
    """Each data key that has sealed values in this database (db.crypto): its id and a
    sealed canary, so a process started with a wrong or missing key stops with a clear
    error instead of serving unreadable records. `retired_at`: `prokus keys rotate` moved
    every value off it."""

    __tablename__ = "data_keys"

    key_id: Mapped[str] = mapped_column(String(8), primary_key=True)
    canary: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
