"""KPM registry files uploaded in the console and imported in the background.

The life of an upload:

1. `UploadCheck` is fed the uploaded bytes as they arrive (the console streams them to a
   file, never holding the file in memory) and refuses a malformed upload before any job
   exists: empty, binary (NUL bytes), not UTF-8, the wrong header (also a `;`-separated
   export), a quote never closed, an absurdly long record, no data rows, too large. So the
   import itself never meets a decoding or CSV error half-way.
2. `create_job` stores a `KpmImportJob` ("queued"); `start` runs `run_job` on a thread of
   the serving process (one import at a time per process; the others wait "queued").
3. `run_job` streams the file through the same `db.kpm_import.import_csv` as
   `prokus kpm import` (validated row by row, upserted by NIK in batches of 5,000, each
   batch its own transaction). It is **idempotent, not all-or-nothing**: a batch once
   committed stays, and importing the same file again changes nothing that is already
   there. A job that stops half-way (the server stopped, the database went away) can be
   completed by uploading the same file again. One transaction for a million rows would
   hold SQLite's write lock (and the bot) for minutes.
   While it runs it writes its progress (bytes read, rows accepted/rejected) at most once
   per `BEAT_SECONDS` and touches the uploaded file: its modification time is the job's
   heartbeat. At the end the counts are stored and audited (`kpm_import`), the uploaded
   file (it holds personal data) is deleted, and the rejected rows (line, reason, masked
   NIK) stay in a CSV next to it for download.
4. `recover_stale` marks a job "failed" whose heartbeat is older than `STALE_AFTER`
   (its process crashed or was stopped): the console calls it whenever the import page or
   a job's progress is shown, so a restarted server reports the dead job at once.
   Uploads live under the data directory; several console instances must share it.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from db import repo
from db.kpm_import import HEADER, WIB, ImportResult, RowError, header_matches, import_csv
from db.models import KpmImportJob

log = logging.getLogger("prokus.kpm_import_jobs")

UPLOAD_SUBDIR = Path("uploads") / "kpm"
MAX_UPLOAD_BYTES = 256 * 1024 * 1024  # ~2.5 million registry rows
MAX_RECORD_CHARS = 131_072  # Python's csv field limit: a longer record is not a registry row
BEAT_SECONDS = 1.0
STALE_AFTER = timedelta(seconds=90)
AUDIT_ACTION = "kpm_import"
QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
ACTIVE = (QUEUED, RUNNING)

INTERRUPTED = ("Impor terhenti karena server konsol berhenti atau macet sebelum selesai. "
               "Baris yang sempat tersimpan tetap ada; unggah ulang berkas yang sama untuk "
               "menyelesaikannya (baris yang sudah ada tidak digandakan).")
FAILED_MESSAGE = ("Impor gagal di tengah jalan ({reason}). Baris yang sempat tersimpan tetap "
                  "ada; unggah ulang berkas yang sama untuk menyelesaikannya (baris yang sudah "
                  "ada tidak digandakan).")

# UploadError.code -> what the operator reads
UPLOAD_MESSAGES = {
    "no_file": "Pilih berkas CSV yang akan diunggah.",
    "empty": "Berkas kosong. Unggah berkas CSV data KPM yang berisi baris judul dan data.",
    "binary": "Berkas ini bukan teks CSV (mungkin berkas Excel, PDF atau arsip). Di Excel "
              "pilih Simpan Sebagai → “CSV UTF-8 (dipisah koma)”, lalu unggah berkas itu.",
    "not_utf8": "Berkas ini bukan teks UTF-8. Di Excel pilih Simpan Sebagai → “CSV UTF-8 "
                "(dipisah koma)”, lalu unggah lagi.",
    "semicolon": "Kolom dipisah titik koma (;). Gunakan koma (,) sebagai pemisah: di Excel "
                 "pilih Simpan Sebagai → “CSV UTF-8 (dipisah koma)”.",
    "wrong_header": "Baris judul tidak sesuai format impor KPM. Baris pertama harus persis: "
                    + ",".join(HEADER),
    "no_rows": "Berkas hanya berisi baris judul, tanpa data KPM.",
    "unclosed_quote": "Ada tanda kutip (\") yang tidak ditutup, jadi baris-barisnya tidak bisa "
                      "dibaca dengan pasti. Periksa berkasnya lalu unggah lagi.",
    "line_too_long": "Ada baris yang terlalu panjang untuk satu data KPM. Periksa apakah "
                     "berkasnya benar CSV data KPM.",
    "too_large": f"Berkas lebih besar dari {MAX_UPLOAD_BYTES // (1024 * 1024)} MB. Bagi "
                 "menjadi beberapa berkas (masing-masing dengan baris judul) lalu unggah "
                 "satu per satu.",
}


class UploadError(ValueError):
    """A malformed upload; `message` is for the operator (Indonesian)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code
        self.message = UPLOAD_MESSAGES[code]


# ---------------------------------------------------------------------- upload check
class UploadCheck:
    """Checks an upload as it streams in, chunk by chunk (constant memory): feed() every
    chunk, then finish(). Raises UploadError. Mirrors what import_csv accepts: UTF-8
    (a BOM allowed), the registry header as the first record, well-formed quoting."""

    def __init__(self, max_bytes: int = MAX_UPLOAD_BYTES) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self.data_rows = 0
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self._pending = ""
        self._header_seen = False
        self._in_quotes = False
        self._record_chars = 0
        self._record_blank = True

    def feed(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise UploadError("too_large")
        if b"\x00" in chunk:
            raise UploadError("binary")
        self._text(self._decode(chunk, final=False))

    def finish(self) -> None:
        self._text(self._decode(b"", final=True))
        if self._pending:
            self._line(self._pending)
            self._pending = ""
        if self.size == 0 or not self._header_seen:
            raise UploadError("empty")
        if self._in_quotes:
            raise UploadError("unclosed_quote")
        if self.data_rows == 0:
            raise UploadError("no_rows")

    def _decode(self, chunk: bytes, final: bool) -> str:
        try:
            return self._decoder.decode(chunk, final)
        except UnicodeDecodeError:
            raise UploadError("binary" if self.size <= 4096 and _looks_binary(chunk)
                              else "not_utf8") from None

    def _text(self, text: str) -> None:
        if not text:
            return
        lines = (self._pending + text).split("\n")
        self._pending = lines.pop()
        for line in lines:
            self._line(line)
        if len(self._pending) > MAX_RECORD_CHARS:
            raise UploadError("line_too_long")

    def _line(self, line: str) -> None:
        if not self._header_seen:
            self._header(line)
            return
        quotes = line.count('"')
        if quotes % 2:
            self._in_quotes = not self._in_quotes
        self._record_chars += len(line) + 1
        if self._record_blank and line.strip(" \t\r,"):
            self._record_blank = False
        if self._record_chars > MAX_RECORD_CHARS:
            raise UploadError("line_too_long")
        if not self._in_quotes:
            if not self._record_blank:
                self.data_rows += 1
            self._record_chars, self._record_blank = 0, True

    def _header(self, line: str) -> None:
        try:
            cells = next(csv.reader([line.rstrip("\r")]), [])
        except csv.Error:
            cells = []
        if not header_matches(cells):
            if not line.strip():
                raise UploadError("wrong_header")
            semi = [c.strip().strip('"') for c in line.rstrip("\r").split(";")]
            raise UploadError("semicolon" if header_matches(semi) else "wrong_header")
        self._header_seen = True


def _looks_binary(chunk: bytes) -> bool:
    """Control bytes other than tab, CR, LF near the start: not a text file."""
    head = chunk[:1024]
    return any(b < 32 and b not in (9, 10, 13) for b in head) or head.startswith(b"PK")


# ---------------------------------------------------------------------- files
def upload_dir(data_dir: Path) -> Path:
    """Where uploads and their rejects reports are kept (created, owner-only)."""
    folder = data_dir / UPLOAD_SUBDIR
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def new_upload_path(data_dir: Path, now: datetime) -> Path:
    """A fresh, unguessable file name for an upload: 20261128-100500-<random>.csv."""
    return upload_dir(data_dir) / f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(8)}.csv"


def rejects_path_for(path: Path) -> Path:
    return path.with_name(path.stem + ".rejected.csv")


def display_name(filename: str | None) -> str:
    """The browser's file name, without folders or control characters, at most 255."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return (name or "berkas.csv")[:255]


# ---------------------------------------------------------------------- jobs
def create_job(session: Session, *, operator: str, filename: str, path: Path,
               total_bytes: int, now: datetime) -> KpmImportJob:
    """A queued job for an uploaded (and checked) file; the caller commits and starts it."""
    job = KpmImportJob(operator=operator[:64], filename=display_name(filename),
                       path=str(path), status=QUEUED, total_bytes=total_bytes,
                       done_bytes=0, rows_imported=0, rows_rejected=0,
                       rejects_path=str(rejects_path_for(path)), created_at=now)
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, job_id: int) -> KpmImportJob | None:
    return session.get(KpmImportJob, job_id)


def recent_jobs(session: Session, limit: int = 10) -> list[KpmImportJob]:
    return list(session.scalars(select(KpmImportJob)
                                .order_by(KpmImportJob.id.desc()).limit(limit)))


def result_detail(session: Session, job_id: int) -> dict | None:
    """The counts audited when the job finished (inserted, updated, unchanged, ...)."""
    from db.models import AuditLog

    row = session.scalars(select(AuditLog).where(AuditLog.action == AUDIT_ACTION,
                                                 AuditLog.subject == f"kpm_import:{job_id}")
                          .order_by(AuditLog.id.desc()).limit(1)).first()
    return row.detail if row is not None else None


def _heartbeat_age(job: KpmImportJob, wall: Callable[[], float]) -> float | None:
    """Seconds since the job's file was last touched; None when the file is gone."""
    try:
        return wall() - os.stat(job.path).st_mtime
    except OSError:
        return None


def recover_stale(session: Session, *, now: datetime, stale_after: timedelta = STALE_AFTER,
                  wall: Callable[[], float] = time.time) -> list[int]:
    """Mark failed every queued or running job whose process is gone (its heartbeat is
    older than `stale_after`, or its file vanished), audit it, and return their ids. Cheap
    when nothing is stale (one indexed read, no lock); the caller commits."""
    failed: list[int] = []
    for job in session.scalars(select(KpmImportJob).where(KpmImportJob.status.in_(ACTIVE))):
        age = _heartbeat_age(job, wall)
        if age is not None and age <= stale_after.total_seconds():
            continue
        changed = session.execute(
            update(KpmImportJob)
            .where(KpmImportJob.id == job.id, KpmImportJob.status.in_(ACTIVE))
            .values(status=FAILED, error=INTERRUPTED, finished_at=now)
            .execution_options(synchronize_session="fetch")).rowcount
        if not changed:  # finished or recovered by someone else meanwhile
            continue
        repo.audit(session, f"operator:{job.operator}"[:64], AUDIT_ACTION, "interrupted",
                   subject=f"kpm_import:{job.id}",
                   detail={"rows_imported": job.rows_imported,
                           "rows_rejected": job.rows_rejected,
                           "done_bytes": job.done_bytes, "total_bytes": job.total_bytes},
                   at=now)
        _remove(Path(job.path))
        failed.append(job.id)
    if failed:
        log.warning("kpm import jobs %s were interrupted; marked failed", failed)
    return failed


class Cancelled(Exception):
    """The job's row is no longer 'running' (marked failed elsewhere): stop importing."""


class _CountingReader(io.RawIOBase):
    """A binary file that counts the bytes read through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        n = self.raw.readinto(buffer)  # type: ignore[attr-defined]
        self.count += n or 0
        return n or 0


@dataclass
class _Progress:
    sessions: sessionmaker[Session]
    job_id: int
    path: Path
    reader: _CountingReader
    result: ImportResult
    every: float
    last: float = 0.0

    def tick(self, _chars: int) -> None:
        moment = time.monotonic()
        if moment - self.last >= self.every:
            self.write()
            self.last = moment

    def write(self) -> None:
        accepted = self.result.rows - self.result.rejected
        with self.sessions.begin() as session:
            changed = session.execute(
                update(KpmImportJob)
                .where(KpmImportJob.id == self.job_id, KpmImportJob.status == RUNNING)
                .values(done_bytes=self.reader.count, rows_imported=accepted,
                        rows_rejected=self.result.rejected)).rowcount
        if not changed:
            raise Cancelled()
        _touch(self.path)


def _touch(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.utime(path)


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:  # pragma: no cover - a permissions problem, logged
        log.warning("could not remove %s: %s", path, exc)


def run_job(sessions: sessionmaker[Session], job_id: int, *,
            clock: Callable[[], datetime] = lambda: datetime.now(UTC),
            today: date | None = None, beat_every: float = BEAT_SECONDS) -> KpmImportJob | None:
    """Import the job's file now (in the calling thread) and record the outcome. Returns
    the finished job (detached), or None when it was not queued (already taken)."""
    with sessions.begin() as session:
        job = session.scalars(select(KpmImportJob).where(KpmImportJob.id == job_id,
                                                         KpmImportJob.status == QUEUED)
                              .with_for_update()).first()
        if job is None:
            return None
        job.status, job.started_at = RUNNING, clock()
        path, rejects = Path(job.path), Path(job.rejects_path or rejects_path_for(Path(job.path)))
        actor = f"operator:{job.operator}"[:64]
    _touch(path)
    today = today or clock().astimezone(WIB).date()
    result = ImportResult()
    outcome, error, reason, done_bytes = DONE, None, None, 0
    try:
        with open(path, "rb") as raw, open(rejects, "w", encoding="utf-8", newline="") as out:
            counting = _CountingReader(raw)
            text = io.TextIOWrapper(io.BufferedReader(counting, 1024 * 1024),
                                    encoding="utf-8-sig", newline="")
            progress = _Progress(sessions, job_id, path, counting, result, beat_every,
                                 last=time.monotonic())
            import_csv(sessions, text, out, progress.tick, today=today, result=result)
            done_bytes = counting.count
    except Cancelled:
        log.warning("kpm import job %s was marked failed while running; stopped", job_id)
        _remove(rejects)
        return None
    except (RowError, UnicodeDecodeError, csv.Error) as exc:  # the upload check missed it
        outcome, reason = FAILED, f"berkas tidak terbaca: {str(exc)[:120]}"
    except Exception as exc:  # the database went away, the disk filled up, ...
        log.exception("kpm import job %s failed", job_id)
        outcome, reason = FAILED, type(exc).__name__
    if outcome == FAILED:
        error = FAILED_MESSAGE.format(reason=reason)[:500]
    imported = result.inserted + result.updated + result.unchanged
    detail = {"rows": result.rows, "inserted": result.inserted, "updated": result.updated,
              "unchanged": result.unchanged, "rejected": result.rejected,
              "duplicates_in_file": result.duplicates_in_file, "warnings": result.warnings,
              "reasons": dict(sorted(result.reasons.items()))}
    if outcome == FAILED:
        detail["error"] = reason
    with sessions.begin() as session:
        job = session.get(KpmImportJob, job_id)
        assert job is not None
        if job.status != RUNNING:  # recovered as failed meanwhile: keep that verdict
            return job
        job.status, job.error, job.finished_at = outcome, error, clock()
        job.rows_imported = imported if outcome == DONE else result.rows - result.rejected
        job.rows_rejected = result.rejected
        if outcome == DONE:
            job.done_bytes = max(done_bytes, job.total_bytes)
        if not result.rejected:
            job.rejects_path = None
        repo.audit(session, actor, AUDIT_ACTION, "ok" if outcome == DONE else "failed",
                   subject=f"kpm_import:{job_id}", detail=detail, at=clock())
    if not result.rejected:
        _remove(rejects)
    _remove(path)  # the upload holds personal data; the registry has it now
    return job


# ---------------------------------------------------------------------- background
_one_at_a_time = threading.Semaphore(1)


def start(sessions: sessionmaker[Session], job_id: int, *,
          clock: Callable[[], datetime] = lambda: datetime.now(UTC),
          beat_every: float = BEAT_SECONDS) -> threading.Thread:
    """Run the job on a daemon thread of this process, after any import already running
    here (the waiting job keeps its heartbeat, so it is not taken for a dead one)."""

    def work() -> None:
        path = None
        with sessions() as session:
            job = session.get(KpmImportJob, job_id)
            path = Path(job.path) if job is not None else None
        while not _one_at_a_time.acquire(timeout=beat_every):
            if path is not None:
                _touch(path)
        try:
            run_job(sessions, job_id, clock=clock, beat_every=beat_every)
        except Exception:  # pragma: no cover - run_job records its own failures
            log.exception("kpm import job %s crashed", job_id)
        finally:
            _one_at_a_time.release()

    thread = threading.Thread(target=work, name=f"kpm-import-{job_id}", daemon=True)
    thread.start()
    return thread
