"""/kpm/import over HTTP: supervisors only, CSRF in the header, malformed uploads refused
with a clear message and nothing imported, the job's progress panel, the counts and the
audited download of the rejected rows."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db import import_jobs as jobs
from db.engine import make_sessionmaker
from db.kpm_import import HEADER
from db.models import Kpm, KpmImportJob
from tests.test_import_jobs import GOOD, csv_bytes, row
from tests.web.conftest import Console


@pytest.fixture
def console(sqlite_engine, clock, tmp_path) -> Console:
    """The console with its data directory (uploads) in the test's temporary folder."""
    return Console(sqlite_engine, clock, project_root=tmp_path)


def upload(console: Console, data: bytes, name: str = "kpm.csv", *, token: str | None = None,
           htmx: bool = False, field: str = "berkas"):
    headers = {"X-CSRF-Token": token if token is not None else console.csrf("/kpm/import")}
    if htmx:
        headers["HX-Request"] = "true"
    return console.client.post("/kpm/import", files={field: (name, data, "text/csv")},
                               headers=headers)


def wait_done(console: Console, job_id: int, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        page = console.client.get(f"/kpm/import/{job_id}/progress")
        assert page.status_code == 200
        if 'data-status="done"' in page.text or 'data-status="failed"' in page.text:
            return page.text
        assert time.monotonic() < deadline, page.text
        time.sleep(0.05)


def kpm_count(console: Console) -> int:
    with make_sessionmaker(console.engine)() as session:
        return session.scalar(select(func.count()).select_from(Kpm)) or 0


def job_rows(console: Console) -> list[KpmImportJob]:
    with make_sessionmaker(console.engine)() as session:
        return list(session.scalars(select(KpmImportJob).order_by(KpmImportJob.id)))


@pytest.mark.parametrize("role", ["verifier", "coordinator"])
def test_only_supervisors_may_upload_or_see_imports(console, role):
    console.signed_in("ani", role)
    assert console.client.get("/kpm/import").status_code == 403
    assert console.client.get("/kpm/import/1").status_code == 403
    assert console.client.get("/kpm/import/1/progress").status_code == 403
    assert console.client.get("/kpm/import/1/rejects.csv").status_code == 403
    response = upload(console, csv_bytes(GOOD), token=console.csrf("/"))
    assert response.status_code == 403 and "Akses ditolak" in response.text
    assert kpm_count(console) == 0 and job_rows(console) == []


def test_without_a_session_or_without_the_token_nothing_is_received(console):
    assert console.client.get("/kpm/import").status_code == 303
    console.signed_in("sup")
    response = console.client.post("/kpm/import",
                                   files={"berkas": ("kpm.csv", csv_bytes(GOOD), "text/csv")})
    assert response.status_code == 403
    assert job_rows(console) == [] and kpm_count(console) == 0


def test_an_upload_is_imported_with_counts_and_an_audited_rejects_download(console, tmp_path):
    console.signed_in("sup")
    page = console.client.get("/kpm/import")
    assert page.status_code == 200 and ",".join(HEADER) in page.text
    assert "Belum ada impor" in page.text
    data = csv_bytes(GOOD, row(nik="123"), row(nik="3201054203900002", jenis_kelamin="P"))
    response = upload(console, data, name="Data KPM <Bogor>.csv")
    assert response.status_code == 303
    job_id = int(response.headers["location"].rsplit("/", 1)[1])
    panel = wait_done(console, job_id)
    assert 'class="kpm-imported">2<' in panel and 'class="kpm-rejected">1<' in panel
    assert "Data KPM &lt;Bogor&gt;.csv" in panel  # the file name is shown escaped
    assert "hx-trigger" not in panel  # finished: the page stops polling
    assert kpm_count(console) == 2
    [job] = job_rows(console)
    assert job.operator == "sup" and job.status == "done" and not Path(job.path).exists()
    assert Path(job.rejects_path).is_relative_to(tmp_path / "data" / "uploads")

    download = console.client.get(f"/kpm/import/{job_id}/rejects.csv")
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/csv")
    assert "attachment" in download.headers["content-disposition"]
    lines = download.text.splitlines()
    assert lines[0] == "line,reason,nik_masked" and lines[1].startswith("3,nik:")
    uploaded, imported, downloaded = (console.audit(a) for a in (
        "kpm_upload", "kpm_import", "kpm_rejects_download"))
    assert uploaded[0].outcome == "ok" and uploaded[0].actor == "operator:sup"
    assert uploaded[0].detail["bytes"] == len(data)
    assert imported[0].detail["inserted"] == 2 and imported[0].detail["rejected"] == 1
    assert downloaded[0].detail["rows"] == 1 and downloaded[0].subject == f"kpm_import:{job_id}"

    listing = console.client.get("/kpm/import")
    assert f'href="/kpm/import/{job_id}"' in listing.text and "Selesai" in listing.text
    full = console.client.get(f"/kpm/import/{job_id}")
    assert full.status_code == 200 and "Unduh baris ditolak" in full.text


def test_htmx_upload_answers_with_the_polling_panel(console):
    console.signed_in("sup")
    response = upload(console, csv_bytes(GOOD), htmx=True)
    assert response.status_code == 202
    assert 'class="card kpm-job"' in response.text and "<html" not in response.text
    job_id = job_rows(console)[0].id
    wait_done(console, job_id)
    assert "Tidak ada baris yang ditolak" in console.client.get(f"/kpm/import/{job_id}").text
    assert console.client.get(f"/kpm/import/{job_id}/rejects.csv").status_code == 404


MALFORMED = [
    (b"", "Berkas kosong"),
    (b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00", "bukan teks CSV"),
    (",".join(HEADER).encode() + b"\n" + "Jos\xe9".encode("latin-1") + b"\n", "bukan teks UTF-8"),
    (csv_bytes(GOOD).replace(b",", b";"), "titik koma"),
    (b"nama,alamat\nBudi,Bogor\n", "Baris judul tidak sesuai"),
    (",".join(HEADER).encode() + b"\n", "hanya berisi baris judul"),
    (csv_bytes(GOOD, row(nama='"Budi'), GOOD), "tanda kutip"),
]


@pytest.mark.parametrize("data,message", MALFORMED)
def test_a_malformed_upload_gets_a_clear_message_and_nothing_is_imported(console, data,
                                                                         message):
    console.signed_in("sup")
    response = upload(console, data)
    assert response.status_code == 400
    assert message in response.text and "Tidak ada data yang diubah" in response.text
    assert job_rows(console) == [] and kpm_count(console) == 0
    [refusal] = console.audit("kpm_upload")
    assert refusal.outcome == "rejected" and refusal.detail["bytes"] == len(data)
    folder = console.settings.data_dir / jobs.UPLOAD_SUBDIR
    assert list(folder.iterdir()) == []  # the partial file is removed


def test_htmx_refusal_is_a_fragment_and_other_bodies_are_refused(console):
    console.signed_in("sup")
    response = upload(console, b"\x00\x00\x00", htmx=True)
    assert response.status_code == 400 and "<html" not in response.text
    assert "bukan teks CSV" in response.text
    token = console.csrf("/kpm/import")
    no_file = upload(console, csv_bytes(GOOD), field="lain", token=token)
    assert no_file.status_code == 400 and "Pilih berkas CSV" in no_file.text
    form = console.client.post("/kpm/import", data={"x": "1"},
                               headers={"X-CSRF-Token": token})
    assert form.status_code == 400 and "Pilih berkas CSV" in form.text
    assert job_rows(console) == []


def test_too_large_is_refused_before_the_whole_file_is_read(console, monkeypatch):
    monkeypatch.setattr(jobs, "MAX_UPLOAD_BYTES", 1000)
    monkeypatch.setattr(jobs.UploadCheck.__init__, "__defaults__", (1000,))
    console.signed_in("sup")
    big = csv_bytes(*[GOOD] * 40)
    response = upload(console, big)
    assert response.status_code == 413 and "Bagi menjadi beberapa berkas" in response.text
    assert job_rows(console) == []


def test_progress_panel_of_a_running_job_polls_and_shows_partial_counts(console):
    console.signed_in("sup")
    folder = jobs.upload_dir(console.settings.data_dir)
    path = folder / "running.csv"
    path.write_bytes(b"x" * 1000)
    with make_sessionmaker(console.engine).begin() as session:
        job = jobs.create_job(session, operator="sup", filename="besar.csv", path=path,
                              total_bytes=4000, now=console.clock())
        job.status, job.done_bytes, job.rows_imported, job.rows_rejected = "running", 1000, 250, 3
        job_id = job.id
    panel = console.client.get(f"/kpm/import/{job_id}/progress")
    assert panel.status_code == 200 and "<html" not in panel.text
    assert f'hx-get="/kpm/import/{job_id}/progress"' in panel.text
    assert 'hx-trigger="every 1s"' in panel.text
    assert 'value="25"' in panel.text and "25%" in panel.text
    assert "1000 B dari 3,9 KB" in panel.text
    assert 'class="kpm-imported">250<' in panel.text and 'class="kpm-rejected">3<' in panel.text
    assert "Sedang diimpor" in panel.text
    assert console.client.get(f"/kpm/import/{job_id}/rejects.csv").status_code == 404

    old = time.time() - 3600  # its process died an hour ago
    os.utime(path, (old, old))
    failed = console.client.get(f"/kpm/import/{job_id}/progress")
    assert 'data-status="failed"' in failed.text and "hx-trigger" not in failed.text
    assert "server konsol berhenti" in failed.text
    assert console.audit("kpm_import")[0].outcome == "interrupted"


def test_unknown_jobs_are_a_friendly_404(console):
    console.signed_in("sup")
    for path in ("/kpm/import/999", "/kpm/import/abc", "/kpm/import/999/progress",
                 "/kpm/import/999/rejects.csv"):
        response = console.client.get(path)
        assert response.status_code == 404 and "Halaman tidak ditemukan" in response.text
