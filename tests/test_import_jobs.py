"""db/import_jobs.py: the streaming upload check, the background import job (progress,
counts, audit, files), idempotence, and a job left 'running' by a killed process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db import import_jobs as jobs
from db.engine import make_sessionmaker
from db.kpm_import import HEADER, write_demo
from db.models import AuditLog, Kpm, KpmImportJob
from tests.test_kpm_import import GOOD

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
TODAY = date(2026, 11, 28)


def row(**changes: str) -> list[str]:
    values = dict(zip(HEADER, GOOD, strict=True))
    values.update(changes)
    return [values[h] for h in HEADER]


def csv_bytes(*rows: list[str], header: str = ",".join(HEADER), newline: str = "\n") -> bytes:
    lines = [header, *(",".join(r) for r in rows)]
    return (newline.join(lines) + newline).encode("utf-8")


def check(data: bytes, chunk: int = 7, max_bytes: int = jobs.MAX_UPLOAD_BYTES) -> jobs.UploadCheck:
    checker = jobs.UploadCheck(max_bytes)
    for start in range(0, len(data), chunk):
        checker.feed(data[start:start + chunk])
    checker.finish()
    return checker


def refused(data: bytes, **kwargs) -> str:
    with pytest.raises(jobs.UploadError) as error:
        check(data, **kwargs)
    assert error.value.message  # an Indonesian explanation for every code
    return error.value.code


# ---------------------------------------------------------------------- the upload check
def test_a_good_file_passes_in_any_chunking_with_bom_crlf_and_multibyte_names():
    second = row(nik="3201054203900002", nama="Siti Ṣāliḥah “Ibu” Aminah", jenis_kelamin="P")
    data = "\ufeff".encode() + csv_bytes(GOOD, second, newline="\r\n")
    for size in (1, 2, 3, 5, 64, len(data)):
        assert check(data, chunk=size).data_rows == 2
    quoted = csv_bytes(row(nama='"Budi, ""Pak RT""\nSantoso"'))  # a quoted comma, quote, newline
    assert check(quoted).data_rows == 1
    assert check(csv_bytes(GOOD) + b"\n\n,,,\n").data_rows == 1  # blank lines are not rows


@pytest.mark.parametrize("data,code", [
    (b"", "empty"),
    (b"\n\n", "wrong_header"),
    (b"PK\x03\x04\x14\x00\x06\x00binary-xlsx", "binary"),
    (b"%PDF-1.7\n\x00\x01\x02", "binary"),
    (",".join(HEADER).encode() + b"\n" + "Budi;Jos\xe9".encode("latin-1") + b"\n", "not_utf8"),
    (csv_bytes(GOOD, header=";".join(HEADER)).replace(b",", b";"), "semicolon"),
    (csv_bytes(GOOD, header="nik,nama,tgl_lahir"), "wrong_header"),
    (csv_bytes(GOOD, header=",".join(h.upper() for h in HEADER)), "wrong_header"),
    (b"nama,alamat\nBudi,Bogor\n", "wrong_header"),
    (",".join(HEADER).encode() + b"\n", "no_rows"),
    (",".join(HEADER).encode(), "no_rows"),
    (csv_bytes(row(nama='"Budi Santoso')), "unclosed_quote"),
    (",".join(HEADER).encode() + b"\n" + b"x" * (jobs.MAX_RECORD_CHARS + 10), "line_too_long"),
])
def test_malformed_uploads_are_refused_with_a_reason(data, code):
    assert refused(data) == code


def test_too_large_is_refused_as_soon_as_the_limit_is_passed():
    checker = jobs.UploadCheck(max_bytes=100)
    checker.feed(csv_bytes()[:90])
    with pytest.raises(jobs.UploadError) as error:
        checker.feed(b"x" * 20)
    assert error.value.code == "too_large"


def test_display_name_drops_folders_and_control_characters():
    assert jobs.display_name("C:\\Users\\ani\\kpm\x07 2026.csv") == "kpm 2026.csv"
    assert jobs.display_name("") == "berkas.csv" and len(jobs.display_name("a" * 400)) == 255


# ---------------------------------------------------------------------- running a job
@pytest.fixture
def sessions(engine):
    return make_sessionmaker(engine)


def new_job(sessions, tmp_path: Path, data: bytes, operator: str = "ani") -> int:
    path = jobs.new_upload_path(tmp_path, NOW)
    path.write_bytes(data)
    with sessions.begin() as session:
        return jobs.create_job(session, operator=operator, filename="kpm.csv", path=path,
                               total_bytes=len(data), now=NOW).id


def audit_rows(sessions, action: str = jobs.AUDIT_ACTION) -> list[AuditLog]:
    with sessions() as session:
        return list(session.scalars(select(AuditLog).where(AuditLog.action == action)
                                    .order_by(AuditLog.id)))


def test_a_job_imports_counts_audits_and_keeps_only_the_rejects(sessions, tmp_path):
    data = csv_bytes(GOOD, row(nik="123"), row(nik="3201054203900002", jenis_kelamin="P"),
                     row(tanggal_lahir="1990-02-30"))
    job_id = new_job(sessions, tmp_path, data)
    job = jobs.run_job(sessions, job_id, clock=lambda: NOW, today=TODAY)
    assert job is not None and job.status == jobs.DONE and job.error is None
    assert (job.rows_imported, job.rows_rejected) == (2, 2)
    assert job.done_bytes == job.total_bytes == len(data)
    assert job.started_at is not None and job.finished_at is not None
    assert not Path(job.path).exists()  # the upload (personal data) is gone
    rejects = Path(job.rejects_path).read_text().splitlines()
    assert rejects[0] == "line,reason,nik_masked" and len(rejects) == 3
    assert rejects[1].startswith("3,nik:") and "3201********" not in rejects[1]
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Kpm)) == 2
    [entry] = audit_rows(sessions)
    assert (entry.actor, entry.outcome, entry.subject) == ("operator:ani", "ok",
                                                           f"kpm_import:{job_id}")
    assert entry.detail["inserted"] == 2 and entry.detail["rejected"] == 2
    assert entry.detail["reasons"] == {"nik": 1, "tanggal_lahir": 1}
    assert jobs.run_job(sessions, job_id) is None  # not queued any more: not run twice


def test_no_rejects_leaves_no_rejects_file_and_the_same_file_twice_changes_nothing(
        sessions, tmp_path):
    data = csv_bytes(GOOD, row(nik="3201054203900002", jenis_kelamin="P"))
    first = jobs.run_job(sessions, new_job(sessions, tmp_path, data), today=TODAY)
    assert first.rows_rejected == 0 and first.rejects_path is None
    assert list((tmp_path / jobs.UPLOAD_SUBDIR).iterdir()) == []
    again = jobs.run_job(sessions, new_job(sessions, tmp_path, data), today=TODAY)
    assert again.status == jobs.DONE and again.rows_imported == 2
    assert audit_rows(sessions)[-1].detail["unchanged"] == 2  # idempotent


def test_progress_is_written_while_it_runs(sessions, tmp_path, monkeypatch):
    monkeypatch.setattr("db.kpm_import.BATCH", 50)
    out = tmp_path / "demo.csv"
    with open(out, "w", encoding="utf-8", newline="") as fh:
        write_demo(fh, 400)
    job_id = new_job(sessions, tmp_path, out.read_bytes())
    seen: list[tuple[str, int, int]] = []
    original = jobs._Progress.write

    def spy(self):
        original(self)
        with sessions() as session:
            job = session.get(KpmImportJob, job_id)
            seen.append((job.status, job.done_bytes, job.rows_imported))

    monkeypatch.setattr(jobs._Progress, "write", spy)
    job = jobs.run_job(sessions, job_id, today=TODAY, beat_every=0)
    assert job.status == jobs.DONE and job.rows_imported == 400
    assert len(seen) > 10 and all(status == jobs.RUNNING for status, _, _ in seen)
    sizes = [done for _, done, _ in seen]
    assert sizes == sorted(sizes) and 0 < sizes[len(sizes) // 2] < job.total_bytes
    rows = [n for _, _, n in seen]
    assert rows == sorted(rows) and 0 < rows[len(rows) // 2] < 400


def test_a_job_marked_failed_meanwhile_stops_and_keeps_that_verdict(sessions, tmp_path,
                                                                    monkeypatch):
    out = tmp_path / "demo.csv"
    with open(out, "w", encoding="utf-8", newline="") as fh:
        write_demo(fh, 200)
    job_id = new_job(sessions, tmp_path, out.read_bytes())
    original = jobs._Progress.write

    def recovered_elsewhere(self):
        with sessions.begin() as session:
            jobs.recover_stale(session, now=NOW, wall=lambda: time.time() + 3600)
        original(self)

    monkeypatch.setattr(jobs._Progress, "write", recovered_elsewhere)
    assert jobs.run_job(sessions, job_id, today=TODAY, beat_every=0) is None
    with sessions() as session:
        job = session.get(KpmImportJob, job_id)
        assert job.status == jobs.FAILED and job.error == jobs.INTERRUPTED


def test_a_database_error_fails_the_job_with_a_message(sessions, tmp_path, monkeypatch):
    job_id = new_job(sessions, tmp_path, csv_bytes(GOOD))

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(jobs, "import_csv", broken)
    job = jobs.run_job(sessions, job_id, today=TODAY)
    assert job.status == jobs.FAILED and "OSError" in job.error
    assert "unggah ulang berkas yang sama" in job.error
    assert audit_rows(sessions)[-1].outcome == "failed"


# ---------------------------------------------------------------------- crashed jobs
def test_stale_running_and_queued_jobs_are_recovered_fresh_ones_are_not(sessions, tmp_path):
    stale = new_job(sessions, tmp_path, csv_bytes(GOOD))
    fresh = new_job(sessions, tmp_path, csv_bytes(GOOD))
    vanished = new_job(sessions, tmp_path, csv_bytes(GOOD))
    with sessions.begin() as session:
        for job_id in (stale, vanished):
            job = session.get(KpmImportJob, job_id)
            job.status, job.started_at, job.done_bytes = jobs.RUNNING, NOW, 10
        stale_path = Path(session.get(KpmImportJob, stale).path)
        Path(session.get(KpmImportJob, vanished).path).unlink()
    old = time.time() - 600
    os.utime(stale_path, (old, old))
    with sessions.begin() as session:
        assert sorted(jobs.recover_stale(session, now=NOW)) == sorted([stale, vanished])
    with sessions.begin() as session:
        assert jobs.recover_stale(session, now=NOW) == []  # once
        assert session.get(KpmImportJob, fresh).status == jobs.QUEUED
        job = session.get(KpmImportJob, stale)
        assert job.status == jobs.FAILED and job.error == jobs.INTERRUPTED
        assert job.finished_at is not None
    assert not stale_path.exists()
    interrupted = [a for a in audit_rows(sessions) if a.outcome == "interrupted"]
    assert {a.subject for a in interrupted} == {f"kpm_import:{stale}",
                                                f"kpm_import:{vanished}"}


_CHILD = """
import sys
from db.engine import make_engine, make_sessionmaker
from db import import_jobs
import db.kpm_import
db.kpm_import.BATCH = 500
sessions = make_sessionmaker(make_engine(sys.argv[1]))
import_jobs.run_job(sessions, int(sys.argv[2]), beat_every=0.05)
print("finished", flush=True)
"""


def test_a_killed_import_is_reported_failed_and_the_same_file_completes_it(
        sessions, engine, tmp_path):
    out = tmp_path / "demo.csv"
    with open(out, "w", encoding="utf-8", newline="") as fh:
        write_demo(fh, 30_000)
    data = out.read_bytes()
    job_id = new_job(sessions, tmp_path, data)
    url = engine.url.render_as_string(hide_password=False)
    child = subprocess.Popen([sys.executable, "-c", _CHILD, url, str(job_id)], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            with sessions() as session:
                job = session.get(KpmImportJob, job_id)
                if job.status == jobs.RUNNING and job.rows_imported >= 1000:
                    break
            assert child.poll() is None, child.stdout.read().decode()
            assert time.monotonic() < deadline, "the import did not start"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)  # a crash: no cleanup runs
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    with sessions() as session:
        job = session.get(KpmImportJob, job_id)
        assert job.status == jobs.RUNNING and 0 < job.done_bytes < len(data)
        partial = session.scalar(select(func.count()).select_from(Kpm))
    assert partial < 30_000  # half-way: some batches committed, not all
    with sessions.begin() as session:  # the heartbeat is fresh: not yet taken for dead
        assert jobs.recover_stale(session, now=NOW) == []
    with sessions.begin() as session:  # "on restart", once the heartbeat is old
        assert jobs.recover_stale(session, now=NOW, wall=lambda: time.time() + 600) == [job_id]
    with sessions() as session:
        job = session.get(KpmImportJob, job_id)
        assert job.status == jobs.FAILED and "unggah ulang berkas yang sama" in job.error
    again = jobs.run_job(sessions, new_job(sessions, tmp_path, data))
    assert again.status == jobs.DONE and again.rows_imported == 30_000
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Kpm)) == 30_000
    detail = audit_rows(sessions)[-1].detail
    assert detail["unchanged"] >= partial - 500 and detail["inserted"] <= 30_000 - partial + 500


def test_start_runs_jobs_one_after_another_in_the_background(sessions, tmp_path):
    first = new_job(sessions, tmp_path, csv_bytes(GOOD))
    second = new_job(sessions, tmp_path, csv_bytes(row(nik="3201054203900002",
                                                       jenis_kelamin="P")))
    threads = [jobs.start(sessions, first, beat_every=0.05),
               jobs.start(sessions, second, beat_every=0.05)]
    for thread in threads:
        thread.join(timeout=30)
    with sessions() as session:
        done = [session.get(KpmImportJob, i) for i in (first, second)]
    assert [j.status for j in done] == [jobs.DONE, jobs.DONE]
    assert done[0].finished_at <= done[1].started_at or done[1].finished_at <= done[0].started_at
